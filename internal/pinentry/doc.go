// Package pinentry asks the card holder for a PIN, or for consent, through a
// native pinentry program (GnuPG's Assuan dialog: pinentry-gnome3, -gtk-2,
// -qt, -curses, -tty, pinentry-mac, Gpg4win's pinentry.exe).
//
// The agent never asks for a PIN in a web page. A web request is turned into a
// [Request] or [ConfirmRequest]; the dialog texts are built by the pure
// functions [PINTexts] and [ConfirmTexts] (French by default, English
// otherwise). They name the requesting origin (IDN shown decoded and raw), the
// operation, the card holder and the tries left, and they show the text that
// the web request supplied only sanitised, length-limited and visibly quoted,
// so that a site cannot impersonate the agent's own wording.
//
// [Client] runs one dialog at a time (a second concurrent call fails at once
// with [ErrBusy]) and ties the pinentry process to the caller's context: when
// the context is cancelled (the HTTP client went away) or the dialog times
// out, the whole process group is killed and no PIN is returned. Errors are
// [ErrCancelled], [ErrTimeout], [ErrUnavailable] and [ErrBusy], all wrapped
// with %w.
//
// The PIN is returned as a [*Secret] that redacts itself in every formatting
// and marshalling path; the card layer reads it with [Secret.Bytes] and calls
// [Secret.Wipe] after the VERIFY APDU. [ValidatePIN] and [ValidatePUK] check
// the format locally so that a malformed code never costs a card try.
//
// # Use of github.com/twpayne/go-pinentry/v4
//
// go-pinentry starts the program (through a Process of ours, see below),
// checks the greeting and sends the SET*/OPTION commands, and sends BYE. Two
// exchanges are done here instead, with the same line primitive:
//
//   - GETPIN: go-pinentry v4.0.0 returns the PIN as an immutable Go string
//     (two copies that can never be wiped) and treats the status line
//     "S ERROR ... 83886142" that pinentry 1.2 sends before a timeout as an
//     unexpected response. Here the PIN is decoded straight from our own line
//     buffer into the Secret and the buffer is zeroed.
//   - CONFIRM: go-pinentry's Client.Confirm reports the SETNOTOK button
//     (ERR 83886194 "Not confirmed") as an error and also fails on the status
//     lines "S BUTTON_INFO close" / "S ERROR" (window closed, timeout). The
//     three-button consent needs all three outcomes.
//
// go-pinentry has no context and no kill; the Process given to it with
// pinentry.WithProcess is context-aware: it starts the program in its own
// process group and kills the group when the context is done.
//
// Behaviour of the real programs (checked on Debian 12, pinentry 1.2.1): in
// the three-button CONFIRM of pinentry-gtk-2 the focused button is Cancel
// ("Refuser"), so Enter or Space means Refuse. pinentry-tty selects a button
// with one key (the letter after "_" in its label). As extra protection
// against keystrokes aimed at a web page landing in a freshly opened dialog
// (security.md §3.7), an "allow" answer that comes back faster than
// Config.MinConfirmDelay is not trusted: the question is asked once more with
// a warning, and a second early answer counts as Refuse.
//
// No password cache is ever enabled (no SETKEYINFO, no
// allow-external-password-cache option), and nothing secret is logged: the
// optional zap logger only sees the program name, kind, origin, outcome and
// duration.
//
// # Tests of other packages
//
// Package pinentrytest returns the path of testdata/fake-pinentry, a scripted
// pinentry (POSIX sh) driven by environment variables, so that end-to-end tests
// can answer a wrong PIN and then the right one.
package pinentry
