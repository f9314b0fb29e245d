package main

import (
	"context"
	"errors"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/cpsagent/cpsagent/internal/config"
	"github.com/cpsagent/cpsagent/internal/install"
	"github.com/cpsagent/cpsagent/internal/localca"
	"github.com/cpsagent/cpsagent/internal/logging"
)

// trustAction is what the agent's start (or a renewal) does with the
// browsers' trust stores.
type trustAction int

const (
	trustNone    trustAction = iota // nothing to do, or nothing installed here
	trustRefresh                    // "cpsagent install" ran: put the current CA where the manifest's stores are
	trustFirst                      // the installer deferred the trust to the agent's first start
)

// decideTrust follows install's own rule (docs/admin.md §1, §2, §6): trust
// is added by "cpsagent install" (run by the packages: the Linux unit's
// ExecStartPre, the MSI, the macOS postinstall), which records what it did
// in install-manifest.json. The agent refreshes the stores itself only
//   - when that manifest exists and names another CA than the current one
//     (created or renewed since: Install re-adds it and removes the old
//     one), or
//   - on its first start (the CA was just created) when the Windows
//     installer registered it for this user with CPSAGENT_NOTRUST=1, which
//     defers the trust to that start (no manifest yet).
//
// Never where nothing was installed (a developer's "go run", tests, a
// machine where "cpsagent uninstall" removed the manifest): a CA is not put
// in a user's browsers without an install.
func decideTrust(m *install.Manifest, manifestErr error, ca string, changes localca.Changes, deferredByInstaller bool) trustAction {
	switch {
	case errors.Is(manifestErr, install.ErrNoManifest):
		if changes.CACreated && deferredByInstaller {
			return trustFirst
		}
		return trustNone
	case manifestErr != nil || m == nil:
		return trustNone
	case changes.TrustStoreUpdateNeeded() || m.CA.SHA256 != ca:
		return trustRefresh
	}
	return trustNone
}

// refreshTrust applies decideTrust with install.Install (trust only: the
// autostart entries are the installer's business).
func refreshTrust(ctx context.Context, stateDir string, ca *localca.Authority, changes localca.Changes, log *zap.Logger) {
	m, err := install.ReadManifest(stateDir)
	if err != nil && !errors.Is(err, install.ErrNoManifest) {
		log.Warn("install manifest unreadable: trust stores not refreshed (run cpsagent install)", logging.Err(err))
	}
	deferred := false
	if errors.Is(err, install.ErrNoManifest) && changes.CACreated && isDefaultStateDir(stateDir) {
		deferred = trustDeferredByInstaller()
	}
	action := decideTrust(m, err, install.Fingerprint(ca.CACert()), changes, deferred)
	if action == trustNone {
		return
	}
	log.Info("adding the local CA to this user's trust stores", logging.Name("fingerprint", ca.Fingerprint()),
		logging.Name("why", map[trustAction]string{trustRefresh: "new CA", trustFirst: "first start after install"}[action]))
	rep, err := install.Install(ctx, install.Options{StateDir: stateDir, CA: ca.CACert(), TrustOnly: true})
	if rep != nil {
		for _, s := range rep.Added {
			log.Info("trust store updated", logging.Name("store", s))
		}
		for _, s := range rep.Skipped {
			log.Info("trust store skipped", logging.Name("store", s))
		}
	}
	if err != nil {
		log.Warn("trust stores not all updated: run cpsagent install (cpsagent doctor lists them)", logging.Err(err))
	}
}

// isDefaultStateDir reports whether dir is the per-OS state directory, the
// one an installer sets up.
func isDefaultStateDir(dir string) bool {
	def, err := config.StateDir()
	return err == nil && filepath.Clean(def) == filepath.Clean(dir)
}
