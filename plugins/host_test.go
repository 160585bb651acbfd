package plugins

import (
	"context"
	"strings"
	"testing"

	"gatehouse"
)

func TestCheck(t *testing.T) {
	h := newTestHost(t)
	tests := []struct {
		name    string
		wasm    []byte
		wantErr string
	}{
		{"go reactor", wasmOf["echo"], ""},
		{"c reactor", wasmOf["c"], ""},
		{"rust command", wasmOf["rust"], ""},
		{"exports nothing", wasmOf["noexports"], `must export the function "handle_request"`},
		{"garbage", []byte("\x00asm garbage that is not a module"), "not a valid WebAssembly module"},
		{"empty", nil, "not a valid WebAssembly module"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.Check(context.Background(), tc.wasm)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			ge := gatehouse.AsError(err)
			if ge == nil || ge.Kind != gatehouse.KindInvalid || ge.Field != "wasm" {
				t.Fatalf("Check error = %#v, want Invalid field wasm", err)
			}
			if !strings.Contains(ge.Message, tc.wantErr) || strings.Contains(ge.Message, "\n") {
				t.Fatalf("Check message = %q, want one line containing %q", ge.Message, tc.wantErr)
			}
		})
	}
}

func TestLoadRefusesWhatCheckRefuses(t *testing.T) {
	h := newTestHost(t)
	p := gatehouse.DefaultPlugin()
	p.ID = "bad"
	for _, b := range [][]byte{wasmOf["noexports"], []byte("garbage")} {
		err := h.Load(context.Background(), p, b)
		if ge := gatehouse.AsError(err); ge == nil || ge.Field != "wasm" {
			t.Fatalf("Load error = %v, want Invalid wasm", err)
		}
	}
	if h.Loaded("bad") {
		t.Fatal("a refused plugin is loaded")
	}
	// A module whose memory cannot start within the limit.
	p.MemoryLimitPages = 1
	err := h.Load(context.Background(), p, wasmOf["echo"])
	if ge := gatehouse.AsError(err); ge == nil || ge.Kind != gatehouse.KindInvalid {
		t.Fatalf("Load with 1 page = %v, want Invalid", err)
	}
}

func TestChainReusesPools(t *testing.T) {
	h := newTestHost(t)
	h.load(t, "echo")
	c1, err := h.Chain("svc", []gatehouse.PluginRef{ref("echo", "a"), ref("echo", "a")})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := h.Chain("svc", []gatehouse.PluginRef{ref("echo", "a"), ref("echo", "a")})
	if c1.steps[0].slot != c2.steps[0].slot || c1.steps[1].slot != c2.steps[1].slot {
		t.Fatal("an unchanged attachment got a new pool")
	}
	if c1.steps[0].slot == c1.steps[1].slot {
		t.Fatal("the same plugin attached twice shares one pool")
	}
	old := c2.steps[0].slot
	c3, _ := h.Chain("svc", []gatehouse.PluginRef{ref("echo", "b")})
	if c3.steps[0].slot == old || !old.pool.Load().retired.Load() {
		t.Fatal("a changed config kept the old attachment")
	}
	if _, err := h.Chain("svc", []gatehouse.PluginRef{ref("missing", "")}); err == nil {
		t.Fatal("Chain accepted a plugin that is not loaded")
	}
	h.Forget("svc")
	if !c3.steps[0].slot.pool.Load().retired.Load() {
		t.Fatal("Forget kept the attachment")
	}
}
