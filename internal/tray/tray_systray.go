//go:build !notray

package tray

import (
	"context"
	"runtime"
	"sync"

	"github.com/getlantern/systray"
	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/tray/icons"
)

// trayBuilt is true when the systray glue is compiled in.
const trayBuilt = true

// runTray is the thin glue between a Menu and getlantern/systray: it creates
// one native item per top-level entry and a fixed pool of slots for the
// dynamic submenus, then copies every new Menu into them.
func runTray(ctx context.Context, c *Controller, opts Options, log *zap.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	onReady := func() {
		g := newGlue(c)
		updates, stop := c.Updates()
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx)
		}()
		go func() {
			defer wg.Done()
			defer stop()
			for {
				select {
				case <-ctx.Done():
					systray.Quit()
					return
				case m := <-updates:
					g.apply(m)
				}
			}
		}()
		g.listen(ctx)
		log.Info("tray ready")
		if opts.OnReady != nil {
			opts.OnReady(true)
		}
	}
	onExit := func() {
		cancel()
		log.Info("tray closed")
	}
	systray.Run(onReady, onExit)
	cancel()
	wg.Wait()
	return nil
}

type slot struct {
	item *systray.MenuItem
	mu   sync.Mutex
	id   string
}

func (s *slot) setID(id string) { s.mu.Lock(); s.id = id; s.mu.Unlock() }
func (s *slot) getID() string   { s.mu.Lock(); defer s.mu.Unlock(); return s.id }

type glue struct {
	c       *Controller
	top     map[string]*slot
	subs    map[string][]*slot // IDSites, IDActivity → child slots
	all     []*slot
	icon    Icon
	tooltip string
}

func newGlue(c *Controller) *glue {
	g := &glue{c: c, top: map[string]*slot{}, subs: map[string][]*slot{}}
	for _, id := range TopLevel {
		if id == IDSeparator {
			systray.AddSeparator()
			continue
		}
		s := &slot{item: systray.AddMenuItem(id, ""), id: id}
		g.top[id] = s
		g.all = append(g.all, s)
	}
	for id, n := range map[string]int{IDSites: MaxSites, IDActivity: MaxActivity + 3} {
		parent := g.top[id].item
		for range n {
			s := &slot{item: parent.AddSubMenuItem("", "")}
			s.item.Hide()
			g.subs[id] = append(g.subs[id], s)
			g.all = append(g.all, s)
		}
	}
	return g
}

// listen forwards clicks to the controller.
func (g *glue) listen(ctx context.Context) {
	for _, s := range g.all {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.item.ClickedCh:
					if id := s.getID(); id != "" {
						g.c.Handle(ctx, id)
					}
				}
			}
		}()
	}
}

func (g *glue) apply(m Menu) {
	if m.Icon != g.icon {
		ext := ".png"
		if runtime.GOOS == "windows" {
			ext = ".ico"
		}
		if b, err := icons.FS.ReadFile(string(m.Icon) + ext); err == nil {
			systray.SetIcon(b)
		}
		g.icon = m.Icon
	}
	if m.Tooltip != g.tooltip {
		systray.SetTooltip(m.Tooltip)
		systray.SetTitle("")
		g.tooltip = m.Tooltip
	}
	for _, it := range m.Items {
		if s := g.top[it.ID]; s != nil {
			set(s, it)
		}
		if slots, ok := g.subs[it.ID]; ok {
			for i, s := range slots {
				if i < len(it.Children) {
					set(s, it.Children[i])
				} else {
					s.setID("")
					s.item.Hide()
				}
			}
		}
	}
	if testOnlyApplied != nil {
		testOnlyApplied(m)
	}
}

func set(s *slot, it Item) {
	s.setID(it.ID)
	s.item.SetTitle(it.Label)
	if it.Enabled {
		s.item.Enable()
	} else {
		s.item.Disable()
	}
	if it.Visible {
		s.item.Show()
	} else {
		s.item.Hide()
	}
}
