package plugins

import (
	"context"
	"testing"

	"gatehouse"
)

// FuzzCheck: uploaded bytes are client bytes; Check must answer an
// Invalid error or nil, never panic.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add(wasmOf["noexports"])
	f.Add(wasmOf["trap"])
	h := newTestHost(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := h.Check(context.Background(), b)
		if err != nil && gatehouse.KindOf(err) != gatehouse.KindInvalid {
			t.Fatalf("Check error of kind %v: %v", gatehouse.KindOf(err), err)
		}
	})
}
