package demoportal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/cpsagent/cpsagent/pkg/cpsid"
)

// Limits of the in-memory session store. The demo keeps everything in
// memory; a real portal uses its own session framework.
const (
	sessionCookie       = "cpsdemo_session"
	sessionIdleTTL      = 2 * time.Hour
	maxSessions         = 2000
	maxDocsPerSession   = 5
	defaultMaxDocument  = 10 << 20  // per document
	defaultDocumentPool = 200 << 20 // all sessions together
)

var errStoreFull = errors.New("demoportal: too many sessions or documents in memory")

// session is one browser's state, found through the session cookie.
type session struct {
	id       string
	lastSeen time.Time
	// nonce is the challenge issued to this session and not yet used. The
	// login handler takes it from here, never from the request: that is
	// what binds the token to this browser session.
	nonce string
	// identity is set once a token verified; nil when logged out.
	identity   *cpsid.Identity
	loggedInAt time.Time
	docs       []*document
}

// document is an uploaded file and, once signed, its signature.
type document struct {
	id        string
	name      string
	data      []byte
	sha256    []byte
	p7s       []byte
	report    *signatureResult
	createdAt time.Time
}

type sessionStore struct {
	mu       sync.Mutex
	sessions map[string]*session
	docBytes int64
	maxBytes int64
	now      func() time.Time
}

func newSessionStore(now func() time.Time, maxBytes int64) *sessionStore {
	return &sessionStore{sessions: map[string]*session{}, now: now, maxBytes: maxBytes}
}

func randomID() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("demoportal: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// purge drops idle sessions. Called with mu held.
func (st *sessionStore) purge(now time.Time) {
	for id, s := range st.sessions {
		if now.Sub(s.lastSeen) > sessionIdleTTL {
			st.drop(id, s)
		}
	}
}

func (st *sessionStore) drop(id string, s *session) {
	for _, d := range s.docs {
		st.docBytes -= int64(len(d.data) + len(d.p7s))
	}
	delete(st.sessions, id)
}

// get returns the session named by the request cookie, or nil.
func (st *sessionStore) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.sessions[c.Value]
	if s == nil {
		return nil
	}
	now := st.now()
	if now.Sub(s.lastSeen) > sessionIdleTTL {
		st.drop(s.id, s)
		return nil
	}
	s.lastSeen = now
	return s
}

// getOrCreate returns the request's session, creating one (and setting the
// cookie) when there is none.
func (st *sessionStore) getOrCreate(w http.ResponseWriter, r *http.Request, secure bool) (*session, error) {
	if s := st.get(r); s != nil {
		return s, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.now()
	st.purge(now)
	if len(st.sessions) >= maxSessions {
		return nil, errStoreFull
	}
	s := &session{id: randomID(), lastSeen: now}
	st.sessions[s.id] = s
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    s.id,
		Path:     "/",
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteStrictMode,
	})
	return s, nil
}

// with runs f on s under the store lock (sessions are shared by
// concurrent requests of one browser).
func (st *sessionStore) with(s *session, f func(s *session) error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return f(s)
}

// addDocument stores d in s, dropping s's oldest document beyond the
// per-session limit, within the global byte budget.
func (st *sessionStore) addDocument(s *session, d *document) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(s.docs) >= maxDocsPerSession {
		old := s.docs[0]
		st.docBytes -= int64(len(old.data) + len(old.p7s))
		s.docs = s.docs[1:]
	}
	if st.docBytes+int64(len(d.data)) > st.maxBytes {
		return errStoreFull
	}
	st.docBytes += int64(len(d.data))
	s.docs = append(s.docs, d)
	return nil
}

// setSignature records p7s and its verification for d.
func (st *sessionStore) setSignature(s *session, d *document, p7s []byte, res *signatureResult) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.docBytes += int64(len(p7s) - len(d.p7s))
	d.p7s = p7s
	d.report = res
}

func (st *sessionStore) document(s *session, id string) *document {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, d := range s.docs {
		if d.id == id {
			return d
		}
	}
	return nil
}
