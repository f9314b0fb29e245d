package pcsc

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ebfe/scard"

	"github.com/cpsagent/cpsagent/internal/card"
)

func TestMapError(t *testing.T) {
	tests := []struct {
		in   error
		want error
	}{
		{scard.ErrNoService, card.ErrPCSCUnavailable},
		{scard.ErrServiceStopped, card.ErrPCSCUnavailable},
		{scard.ErrInvalidHandle, card.ErrPCSCUnavailable},
		{scard.ErrCommError, card.ErrPCSCUnavailable},
		{scard.ErrNoReadersAvailable, card.ErrNoReader},
		{scard.ErrUnknownReader, card.ErrNoReader},
		{scard.ErrReaderUnavailable, card.ErrNoReader},
		{scard.ErrNoSmartcard, card.ErrNoCard},
		{scard.ErrRemovedCard, card.ErrCardRemoved},
		{scard.ErrResetCard, card.ErrCardReset},
		{scard.ErrUnresponsiveCard, card.ErrCardFailure},
		{scard.ErrSharingViolation, card.ErrCardFailure},
		{fmt.Errorf("wrapped: %w", scard.ErrRemovedCard), card.ErrCardRemoved},
	}
	for _, tt := range tests {
		got := mapError(tt.in, "R")
		if !errors.Is(got, tt.want) {
			t.Errorf("mapError(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !errors.Is(got, tt.in) {
			t.Errorf("mapError(%v) loses the PC/SC error", tt.in)
		}
	}
	if mapError(nil, "R") != nil {
		t.Error("mapError(nil) != nil")
	}
	other := errors.New("not pcsc")
	if mapError(other, "R") != other {
		t.Error("a non-PC/SC error must pass through")
	}
}
