package audit

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary records to Verify and Query: they must never
// panic, and Verify either accepts or names a line with a *VerifyError.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","id":"x","prev_hash":"` + GenesisHash + `","hash":"","type":"a","outcome":"success"}` + "\n"))
	f.Add([]byte("{}\n\n"))
	f.Add([]byte(`{"seq":2,"details":{"upto_seq":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := VerifyWith(bytes.NewReader(data), VerifyOptions{RequireCheckpoint: true})
		var ve *VerifyError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("Verify error %v is not a *VerifyError", err)
		}
		_ = Query(bytes.NewReader(data), Filter{}, zeroTime, func(Event) error { return nil })
	})
}
