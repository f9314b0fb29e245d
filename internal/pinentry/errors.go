package pinentry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gopinentry "github.com/twpayne/go-pinentry/v4"
)

// Errors returned by a [Prompter]. They are wrapped with %w: test them with
// errors.Is.
var (
	// ErrCancelled: the user cancelled or closed the dialog, or the caller's
	// context was cancelled (then the error also matches context.Canceled).
	ErrCancelled = errors.New("pinentry: cancelled")
	// ErrTimeout: nobody answered before the request's timeout, or the
	// caller's context deadline passed.
	ErrTimeout = errors.New("pinentry: timed out")
	// ErrUnavailable: no pinentry program, or it failed to start, crashed or
	// spoke something else than the pinentry protocol.
	ErrUnavailable = errors.New("pinentry: program unavailable")
	// ErrBusy: a dialog of the same Prompter is already open. Dialogs are never
	// stacked.
	ErrBusy = errors.New("pinentry: another dialog is already open")
)

// Assuan error codes sent by pinentry (GPG_ERR_SOURCE_PINENTRY<<24 | code).
const (
	codeCancelled    = gopinentry.AssuanErrorCodeCancelled // GPG_ERR_CANCELED, 99
	codeTimeout      = 5<<24 | 62                          // GPG_ERR_TIMEOUT
	codeNotConfirmed = 5<<24 | 114                         // GPG_ERR_NOT_CONFIRMED: the SETNOTOK button
)

// errUnexpected is returned for an Assuan line that is neither a status, data,
// OK nor ERR line. The line itself is not included: it might contain a secret.
var errUnexpected = errors.New("unexpected response from the pinentry program")

// classify turns an error of the Assuan exchange into one of the package
// errors. ctx is the context that governed the exchange: when it is done, the
// process was killed because of it, so its reason wins over the read error.
func classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", ErrTimeout, ctxErr)
		}
		return fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
	}
	var ae *gopinentry.AssuanError
	if errors.As(err, &ae) {
		switch ae.Code {
		case codeCancelled:
			return fmt.Errorf("%w by the user", ErrCancelled)
		case codeTimeout:
			return fmt.Errorf("%w: no answer before the dialog timeout", ErrTimeout)
		default:
			return fmt.Errorf("%w: error %d %s", ErrUnavailable, ae.Code, sanitizeLine(ae.Description, 120))
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// sanitizeLine keeps an error text from the program printable and short.
func sanitizeLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	return sanitize(s, max)
}
