package tray

import (
	"strings"
	"testing"
	"time"

	"github.com/cpsagent/cpsagent/internal/consent"
	"github.com/cpsagent/cpsagent/internal/i18n"
	"github.com/cpsagent/cpsagent/internal/ledger"
)

func ready() CardState {
	return CardState{ServiceUp: true, Readers: []ReaderState{{
		Name: "Reader 0", CardPresent: true, Supported: true, Generation: "CPS3",
		Holder: "Marie CURIE", Profession: "Médecin", TriesLeft: 3,
	}}}
}

func with(f func(*CardState)) CardState {
	c := ready()
	f(&c)
	return c
}

func TestIcons(t *testing.T) {
	tests := []struct {
		name   string
		card   CardState
		icon   Icon
		status string
	}{
		{"service down", CardState{}, IconError, "Service carte à puce injoignable"},
		{"no reader", CardState{ServiceUp: true}, IconNoReader, "Aucun lecteur de carte"},
		{"no card", CardState{ServiceUp: true, Readers: []ReaderState{{Name: "R"}}}, IconNoCard, "Aucune carte dans le lecteur"},
		{"ready", ready(), IconReady, "Carte CPS3 prête"},
		{"busy", with(func(c *CardState) { c.Busy, c.BusyOp = true, "sign" }), IconBusy, "Opération en cours : Signature"},
		{"busy wins over blocked", with(func(c *CardState) { c.Busy = true; c.Readers[0].PINBlocked = true }), IconBusy, "Opération en cours : Opération"},
		{"unsupported", with(func(c *CardState) { c.Readers[0].Supported = false }), IconError, "Carte non reconnue (pas une carte CPS)"},
		{"PIN blocked", with(func(c *CardState) { c.Readers[0].PINBlocked = true }), IconWarning, "Code porteur bloqué : débloquez-le avec le code de déblocage"},
		{"PUK blocked", with(func(c *CardState) { c.Readers[0].PINBlocked, c.Readers[0].PUKBlocked = true, true }), IconError, "Carte bloquée définitivement : demandez une nouvelle carte"},
		{"second reader has the card", CardState{ServiceUp: true, Readers: []ReaderState{{Name: "A"}, ready().Readers[0]}}, IconReady, "Carte CPS3 prête"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Build(State{Lang: i18n.FR, Card: tt.card})
			if m.Icon != tt.icon {
				t.Errorf("icon %q, want %q", m.Icon, tt.icon)
			}
			st, _ := m.Find(IDStatus)
			if st.Label != tt.status || st.Enabled || !st.Visible {
				t.Errorf("status item %+v, want label %q, disabled, visible", st, tt.status)
			}
			if !strings.HasPrefix(m.Tooltip, "cpsagent — "+tt.status) {
				t.Errorf("tooltip %q", m.Tooltip)
			}
		})
	}
}

func TestTopLevelLayoutIsStable(t *testing.T) {
	for _, s := range []State{{}, {Card: ready()}, {Card: ready(), Flow: IDChangePIN, Notice: "x"}} {
		m := Build(s)
		if len(m.Items) != len(TopLevel) {
			t.Fatalf("%d items, want %d", len(m.Items), len(TopLevel))
		}
		for i, it := range m.Items {
			if it.ID != TopLevel[i] {
				t.Fatalf("item %d is %q, want %q", i, it.ID, TopLevel[i])
			}
		}
	}
}

func TestActionsEnabled(t *testing.T) {
	tests := []struct {
		name            string
		state           State
		change, unblock bool
		holder          string
	}{
		{"ready", State{Card: ready()}, true, true, "Marie CURIE — Médecin"},
		{"no card", State{Card: CardState{ServiceUp: true, Readers: []ReaderState{{Name: "R"}}}}, false, false, ""},
		{"service down", State{Card: with(func(c *CardState) { c.ServiceUp = false })}, false, false, "Marie CURIE — Médecin"},
		{"busy", State{Card: with(func(c *CardState) { c.Busy = true })}, false, false, "Marie CURIE — Médecin"},
		{"a flow runs", State{Card: ready(), Flow: IDUnblockPIN}, false, false, "Marie CURIE — Médecin"},
		{"PIN blocked: unblock only", State{Card: with(func(c *CardState) { c.Readers[0].PINBlocked = true })}, false, true, "Marie CURIE — Médecin"},
		{"PUK blocked: nothing", State{Card: with(func(c *CardState) { c.Readers[0].PINBlocked, c.Readers[0].PUKBlocked = true, true })}, false, false, "Marie CURIE — Médecin"},
		{"unsupported", State{Card: with(func(c *CardState) { c.Readers[0].Supported = false; c.Readers[0].Holder = "" })}, false, false, ""},
		{"no profession", State{Card: with(func(c *CardState) { c.Readers[0].Profession = "" })}, true, true, "Marie CURIE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Build(tt.state)
			ch, _ := m.Find(IDChangePIN)
			ub, _ := m.Find(IDUnblockPIN)
			if ch.Enabled != tt.change || ub.Enabled != tt.unblock {
				t.Errorf("change %v unblock %v, want %v %v", ch.Enabled, ub.Enabled, tt.change, tt.unblock)
			}
			h, _ := m.Find(IDHolder)
			if h.Label != tt.holder || h.Visible != (tt.holder != "") || h.Enabled {
				t.Errorf("holder item %+v, want %q", h, tt.holder)
			}
			for _, id := range []string{IDDoctor, IDOpenLogs, IDAbout, IDQuit, IDSites, IDActivity} {
				if it, _ := m.Find(id); !it.Enabled || !it.Visible {
					t.Errorf("%s not always available", id)
				}
			}
		})
	}
	m := Build(State{Card: ready(), Flow: IDChangePIN})
	if it, _ := m.Find(IDChangePIN); it.Label != "Changer le code porteur… (en cours)" {
		t.Errorf("running flow label %q", it.Label)
	}
}

func TestSitesSubmenu(t *testing.T) {
	tests := []struct {
		name  string
		sites consent.Sites
		want  []string // "ID|label|enabled"
	}{
		{"none", consent.Sites{UserAdditions: true}, []string{"sites-msg:none|Aucun site autorisé|false"}},
		{"all kinds", consent.Sites{
			UserAdditions: true,
			Policy:        []string{"https://pol.fr"},
			Config:        []string{"https://cfg.fr"},
			User:          []consent.Grant{{Origin: "https://user.fr"}},
			Once:          []string{"https://once.fr"},
			Denied:        []string{"https://bad.fr"},
		}, []string{
			"site:https://pol.fr|https://pol.fr (administrateur)|false",
			"site:https://cfg.fr|https://cfg.fr (configuration)|false",
			"revoke:https://user.fr|Retirer https://user.fr|true",
			"site:https://once.fr|https://once.fr (cette fois seulement)|false",
			"site:https://bad.fr|https://bad.fr (interdit par l'administrateur)|false",
		}},
		{"locked by the policy: user entries hidden", consent.Sites{
			UserAdditions: false,
			Policy:        []string{"https://pol.fr"},
			Config:        []string{"https://cfg.fr"},
			User:          []consent.Grant{{Origin: "https://user.fr"}},
		}, []string{
			"site:https://pol.fr|https://pol.fr (administrateur)|false",
			"sites-msg:locked|Liste fixée par l'administrateur|false",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, _ := Build(State{Sites: tt.sites}).Find(IDSites)
			var got []string
			for _, c := range it.Children {
				got = append(got, c.ID+"|"+c.Label+"|"+map[bool]string{true: "true", false: "false"}[c.Enabled])
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("children:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// Many sites: capped to the glue's slots.
	var many consent.Sites
	many.UserAdditions = true
	for i := range 50 {
		many.User = append(many.User, consent.Grant{Origin: "https://s" + string(rune('a'+i%26)) + ".fr"})
	}
	it, _ := Build(State{Sites: many}).Find(IDSites)
	if len(it.Children) > MaxSites || !strings.Contains(it.Children[len(it.Children)-1].Label, "et 22 autres") {
		t.Errorf("%d children, last %q", len(it.Children), it.Children[len(it.Children)-1].Label)
	}
}

func TestActivitySubmenu(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	if paris == nil {
		paris = time.FixedZone("CET", 3600)
	}
	t0 := time.Date(2026, 11, 25, 9, 3, 0, 0, time.UTC)
	es := []ledger.Entry{
		{Time: t0, Origin: "https://portail.fr", Operation: ledger.OpSign, Result: "ok"},
		{Time: t0, Operation: ledger.OpChangePIN, Result: "pin_incorrect"},
	}
	it, _ := Build(State{Lang: i18n.FR, Recent: es, Location: paris}).Find(IDActivity)
	want := []string{
		"25/11 10:03 · Signature · https://portail.fr · réussi",
		"25/11 10:03 · Changement du code porteur · cet ordinateur · échec (pin_incorrect)",
		"Exporter le journal (CSV)",
		"Exporter le journal (JSON)",
	}
	if len(it.Children) != len(want) {
		t.Fatalf("children %+v", it.Children)
	}
	for i, w := range want {
		if it.Children[i].Label != w {
			t.Errorf("child %d = %q, want %q", i, it.Children[i].Label, w)
		}
	}
	if !it.Children[2].Enabled || it.Children[0].Enabled {
		t.Error("export items must be enabled, entries not")
	}
	// English, empty, and more than MaxActivity entries.
	it, _ = Build(State{Lang: i18n.EN}).Find(IDActivity)
	if it.Children[0].Label != "No activity" || it.Children[1].Enabled {
		t.Errorf("empty: %+v", it.Children)
	}
	var lots []ledger.Entry
	for range 25 {
		lots = append(lots, es[0])
	}
	it, _ = Build(State{Recent: lots}).Find(IDActivity)
	if len(it.Children) != MaxActivity+2 {
		t.Errorf("%d children, want %d", len(it.Children), MaxActivity+2)
	}
}

func TestEnglish(t *testing.T) {
	m := Build(State{Lang: i18n.EN, Card: ready(), Version: "1.2.3"})
	for id, want := range map[string]string{
		IDStatus: "CPS3 card ready", IDChangePIN: "Change the PIN…", IDUnblockPIN: "Unblock the PIN…",
		IDDoctor: "Diagnostics…", IDQuit: "Quit", IDAbout: "About cpsagent 1.2.3",
	} {
		if it, _ := m.Find(id); it.Label != want {
			t.Errorf("%s = %q, want %q", id, it.Label, want)
		}
	}
}
