package card

import (
	"crypto/x509"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// certEntry is what the engine keeps per card serial: the two certificates
// (public data) and the identity built from them. Never a PIN.
type certEntry struct {
	serial     string
	generation string
	auth, sign *x509.Certificate
	identity   *cpsid.Identity
	readAt     time.Time
	used       uint64
}

// certCache is a small LRU keyed by card serial, guarded by Engine.mu.
type certCache struct {
	max     int
	clock   uint64
	entries map[string]*certEntry
}

func newCertCache(max int) *certCache {
	return &certCache{max: max, entries: map[string]*certEntry{}}
}

func (c *certCache) get(serial string) *certEntry {
	en := c.entries[serial]
	if en != nil {
		c.clock++
		en.used = c.clock
	}
	return en
}

func (c *certCache) put(en *certEntry) {
	c.clock++
	en.used = c.clock
	c.entries[en.serial] = en
	for len(c.entries) > c.max {
		var old *certEntry
		for _, x := range c.entries {
			if old == nil || x.used < old.used {
				old = x
			}
		}
		delete(c.entries, old.serial)
	}
}

func (c *certCache) drop(serial string) { delete(c.entries, serial) }

func (en *certEntry) data(reader string, atr []byte, fromCache bool) *CardData {
	return &CardData{
		Reader:     reader,
		Serial:     en.serial,
		Generation: en.generation,
		ATR:        append([]byte(nil), atr...),
		AuthCert:   en.auth,
		SignCert:   en.sign,
		Identity:   en.identity,
		ReadAt:     en.readAt,
		FromCache:  fromCache,
	}
}

func (en *certEntry) holder() string {
	if en == nil || en.identity == nil {
		return ""
	}
	switch {
	case en.identity.GivenName != "" && en.identity.FamilyName != "":
		return en.identity.GivenName + " " + en.identity.FamilyName
	default:
		return en.identity.FamilyName
	}
}
