// Package tray is the agent's system-tray presence: an icon per state and a
// menu (card holder, allowed sites, recent activity, PIN management,
// diagnostics, logs, about, quit).
//
// The menu is a pure function of the agent's state ([Build]: [State] in,
// [Menu] out), table-tested without any tray. [Controller] turns menu clicks
// into actions and keeps the state up to date. The systray glue
// (tray_systray.go, getlantern/systray v1.2.2, build tag !notray) only copies
// a Menu into native items; tray_notray.go (build tag notray) leaves GTK out
// entirely. [Run] chooses the tray or the headless mode.
package tray

import (
	"fmt"
	"strings"
	"time"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
)

// Icon names a tray icon (internal/tray/icons/<Icon>.png and .ico).
type Icon string

// Icons, one per state.
const (
	IconNoReader Icon = "noreader" // no reader connected
	IconNoCard   Icon = "nocard"   // reader(s), no card
	IconReady    Icon = "ready"    // a supported card is in
	IconBusy     Icon = "busy"     // an operation is in progress
	IconError    Icon = "error"    // smart-card service down, unsupported card
	IconWarning  Icon = "warning"  // the card needs its holder: PIN or PUK blocked
)

// CardState is what the tray knows about readers and cards.
type CardState struct {
	// ServiceUp: the smart-card service (pcscd, SCardSvr) answers.
	ServiceUp bool
	Readers   []ReaderState
	// Busy: a card operation is running; BusyOp names it (ledger operation
	// names: authenticate, sign, change-pin, unblock-pin).
	Busy   bool
	BusyOp string
}

// ReaderState is one reader and its card.
type ReaderState struct {
	Name        string
	CardPresent bool
	Supported   bool   // a CPx card the agent can use
	Generation  string // CPS3, CPS4, ...
	Holder      string // display name, when the identity was read
	Profession  string
	PINBlocked  bool
	PUKBlocked  bool
	TriesLeft   int // -1 when unknown
}

// Primary returns the reader the tray acts on (the first with a supported
// card, else the first with a card, else the first), and false when there is
// no reader.
func (c CardState) Primary() (ReaderState, bool) {
	for _, r := range c.Readers {
		if r.CardPresent && r.Supported {
			return r, true
		}
	}
	for _, r := range c.Readers {
		if r.CardPresent {
			return r, true
		}
	}
	if len(c.Readers) > 0 {
		return c.Readers[0], true
	}
	return ReaderState{}, false
}

// State is everything the menu shows.
type State struct {
	Lang    i18n.Lang
	Version string
	Card    CardState
	Sites   consent.Sites
	// Recent activity, newest first (at most MaxActivity are shown).
	Recent []ledger.Entry
	// Flow is the PIN flow running ("change-pin", "unblock-pin") or "".
	Flow string
	// Notice is a one-line message shown in the menu (result of the last
	// PIN flow or export), "" for none.
	Notice string
	// Location for activity times (nil: local time).
	Location *time.Location
}

// Item IDs. Dynamic items use a prefix and a value.
const (
	IDStatus      = "status"
	IDHolder      = "holder"
	IDSites       = "sites"
	IDActivity    = "activity"
	IDChangePIN   = "change-pin"
	IDUnblockPIN  = "unblock-pin"
	IDNotice      = "notice"
	IDDoctor      = "doctor"
	IDOpenLogs    = "open-logs"
	IDAbout       = "about"
	IDQuit        = "quit"
	IDExportCSV   = "export-csv"
	IDExportJSON  = "export-json"
	IDSeparator   = "-"
	PrefixRevoke  = "revoke:"   // + origin: remove from the "always" list
	PrefixSite    = "site:"     // + origin: information only
	PrefixEntry   = "activity:" // + index: information only
	PrefixSiteMsg = "sites-msg:"
)

// Limits of the dynamic submenus (the systray glue creates this many slots).
const (
	MaxSites    = 30
	MaxActivity = 10
)

// Item is one menu entry.
type Item struct {
	ID       string
	Label    string
	Enabled  bool
	Visible  bool
	Children []Item // a submenu
}

// Menu is the whole tray: icon, tooltip and items. Top-level items are always
// the same IDs in the same order (TopLevel); only Visible, Enabled and
// Label change, and the children of IDSites and IDActivity.
type Menu struct {
	Icon    Icon
	Tooltip string
	Items   []Item
}

// TopLevel is the order of the top-level items ("-" is a separator).
var TopLevel = []string{
	IDStatus, IDHolder, IDNotice, IDSeparator,
	IDSites, IDActivity, IDSeparator,
	IDChangePIN, IDUnblockPIN, IDSeparator,
	IDDoctor, IDOpenLogs, IDAbout, IDSeparator,
	IDQuit,
}

// Find returns the item with id, searching submenus too.
func (m Menu) Find(id string) (Item, bool) {
	var find func([]Item) (Item, bool)
	find = func(items []Item) (Item, bool) {
		for _, it := range items {
			if it.ID == id {
				return it, true
			}
			if c, ok := find(it.Children); ok {
				return c, true
			}
		}
		return Item{}, false
	}
	return find(m.Items)
}

// IconFor returns the icon and the status text of a card state.
func IconFor(c CardState, p i18n.Printer) (Icon, string) {
	r, hasReader := c.Primary()
	switch {
	case !c.ServiceUp:
		return IconError, p.T(i18n.TrayStatusNoService)
	case c.Busy:
		return IconBusy, p.T(i18n.TrayStatusBusy, opLabel(p, c.BusyOp))
	case !hasReader:
		return IconNoReader, p.T(i18n.TrayStatusNoReader)
	case !r.CardPresent:
		return IconNoCard, p.T(i18n.TrayStatusNoCard)
	case !r.Supported:
		return IconError, p.T(i18n.TrayStatusUnsupported)
	case r.PUKBlocked:
		return IconError, p.T(i18n.TrayStatusPUKBlocked)
	case r.PINBlocked:
		return IconWarning, p.T(i18n.TrayStatusPINBlocked)
	default:
		return IconReady, p.T(i18n.TrayStatusReady, r.Generation)
	}
}

// Build computes the menu for s. It is a pure function.
func Build(s State) Menu {
	p := i18n.For(s.Lang)
	icon, status := IconFor(s.Card, p)
	r, _ := s.Card.Primary()
	cardUsable := s.Card.ServiceUp && r.CardPresent && r.Supported
	idle := !s.Card.Busy && s.Flow == ""

	holder := ""
	if r.CardPresent && r.Holder != "" {
		holder = r.Holder
		if r.Profession != "" {
			holder += " — " + r.Profession
		}
	}
	tooltip := "cpsagent — " + status
	if holder != "" {
		tooltip += "\n" + holder
	}

	flowLabel := func(id string, key i18n.Key) string {
		if s.Flow == id {
			return p.T(i18n.TrayInProgress, p.T(key))
		}
		return p.T(key)
	}
	items := map[string]Item{
		IDStatus: {ID: IDStatus, Label: status, Visible: true},
		IDHolder: {ID: IDHolder, Label: holder, Visible: holder != ""},
		IDNotice: {ID: IDNotice, Label: s.Notice, Visible: s.Notice != ""},
		IDSites:  {ID: IDSites, Label: p.T(i18n.TraySites), Enabled: true, Visible: true, Children: siteItems(s.Sites, p)},
		IDActivity: {ID: IDActivity, Label: p.T(i18n.TrayActivity), Enabled: true, Visible: true,
			Children: activityItems(s.Recent, s.Location, p)},
		IDChangePIN: {ID: IDChangePIN, Label: flowLabel(IDChangePIN, i18n.TrayChangePIN), Visible: true,
			Enabled: cardUsable && idle && !r.PINBlocked},
		IDUnblockPIN: {ID: IDUnblockPIN, Label: flowLabel(IDUnblockPIN, i18n.TrayUnblockPIN), Visible: true,
			Enabled: cardUsable && idle && !r.PUKBlocked},
		IDDoctor:   {ID: IDDoctor, Label: p.T(i18n.TrayDoctor), Enabled: true, Visible: true},
		IDOpenLogs: {ID: IDOpenLogs, Label: p.T(i18n.TrayOpenLogs), Enabled: true, Visible: true},
		IDAbout:    {ID: IDAbout, Label: p.T(i18n.TrayAbout, s.Version), Enabled: true, Visible: true},
		IDQuit:     {ID: IDQuit, Label: p.T(i18n.TrayQuit), Enabled: true, Visible: true},
	}
	m := Menu{Icon: icon, Tooltip: tooltip}
	for _, id := range TopLevel {
		if id == IDSeparator {
			m.Items = append(m.Items, Item{ID: IDSeparator, Visible: true})
			continue
		}
		m.Items = append(m.Items, items[id])
	}
	return m
}

func siteItems(s consent.Sites, p i18n.Printer) []Item {
	var out []Item
	info := func(origin string, key i18n.Key) {
		out = append(out, Item{ID: PrefixSite + origin, Label: p.T(key, origin), Visible: true})
	}
	for _, o := range s.Policy {
		info(o, i18n.TraySitePolicy)
	}
	if s.UserAdditions {
		for _, o := range s.Config {
			info(o, i18n.TraySiteConfig)
		}
		for _, g := range s.User {
			out = append(out, Item{ID: PrefixRevoke + g.Origin, Label: p.T(i18n.TraySiteRevoke, g.Origin), Enabled: true, Visible: true})
		}
		for _, o := range s.Once {
			info(o, i18n.TraySiteOnce)
		}
	}
	for _, o := range s.Denied {
		info(o, i18n.TraySiteDenied)
	}
	if len(out) > MaxSites-1 {
		more := len(out) - (MaxSites - 2)
		out = append(out[:MaxSites-2], Item{ID: PrefixSiteMsg + "more", Label: p.T(i18n.TraySitesMore, more), Visible: true})
	}
	if len(out) == 0 {
		out = append(out, Item{ID: PrefixSiteMsg + "none", Label: p.T(i18n.TraySitesNone), Visible: true})
	}
	if !s.UserAdditions {
		out = append(out, Item{ID: PrefixSiteMsg + "locked", Label: p.T(i18n.TraySitesLocked), Visible: true})
	}
	return out
}

func activityItems(es []ledger.Entry, loc *time.Location, p i18n.Printer) []Item {
	if loc == nil {
		loc = time.Local
	}
	var out []Item
	for i, e := range es {
		if i == MaxActivity {
			break
		}
		where := e.Origin
		if where == "" {
			where = p.T(i18n.TrayActivityLocal)
		}
		out = append(out, Item{
			ID: fmt.Sprintf("%s%d", PrefixEntry, i),
			Label: p.T(i18n.TrayActivityEntry, e.Time.In(loc).Format("02/01 15:04"),
				opLabel(p, string(e.Operation)), where, resultLabel(p, e.Result)),
			Visible: true,
		})
	}
	if len(out) == 0 {
		out = append(out, Item{ID: PrefixEntry + "none", Label: p.T(i18n.TrayActivityNone), Visible: true})
	}
	has := len(es) > 0
	out = append(out,
		Item{ID: IDExportCSV, Label: p.T(i18n.TrayExportCSV), Enabled: has, Visible: true},
		Item{ID: IDExportJSON, Label: p.T(i18n.TrayExportJSON), Enabled: has, Visible: true})
	return out
}

func opLabel(p i18n.Printer, op string) string {
	switch ledger.Operation(op) {
	case ledger.OpAuthenticate:
		return p.T(i18n.OpAuthenticate)
	case ledger.OpSign:
		return p.T(i18n.OpSign)
	case ledger.OpReadCard:
		return p.T(i18n.OpReadCard)
	case ledger.OpChangePIN:
		return p.T(i18n.OpChangePIN)
	case ledger.OpUnblockPIN, "unblock":
		return p.T(i18n.OpUnblockPIN)
	case "":
		return p.T(i18n.OpUnknown)
	default:
		return strings.ReplaceAll(op, "-", " ")
	}
}

func resultLabel(p i18n.Printer, code string) string {
	if code == ledger.ResultOK {
		return p.T(i18n.ResultOK)
	}
	return p.T(i18n.ResultFailed, code)
}
