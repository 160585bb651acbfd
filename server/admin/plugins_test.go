package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"

	"gatehouse"
)

func TestPlugins(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)

	// Upload with default limits, then with limits in the query.
	p := a.mustPlugin("auth")
	sum := sha256.Sum256([]byte(wasmBytes))
	want := gatehouse.DefaultPlugin()
	want.ID, want.Name, want.SHA256 = p.ID, "auth", hex.EncodeToString(sum[:])
	if p != want || len(p.ID) == 0 {
		t.Errorf("created %+v, want %+v", p, want)
	}
	q := decode[gatehouse.Plugin](t, a.expect(a.do("POST", "/api/plugins?name=limited&memoryLimitPages=16&timeoutMs=250&poolSize=2",
		"application/wasm", wasmBytes), http.StatusCreated))
	if q.MemoryLimitPages != 16 || q.TimeoutMs != 250 || q.PoolSize != 2 || q.Name != "limited" {
		t.Errorf("created with limits %+v", q)
	}

	// Bad names, limits and modules are refused and nothing is stored.
	for _, tc := range []struct{ query, body, field string }{
		{"", wasmBytes, "name"},
		{"?name=x&memoryLimitPages=0", wasmBytes, "memoryLimitPages"},
		{"?name=x&memoryLimitPages=65537", wasmBytes, "memoryLimitPages"},
		{"?name=x&memoryLimitPages=-1", wasmBytes, "memoryLimitPages"},
		{"?name=x&timeoutMs=abc", wasmBytes, "timeoutMs"},
		{"?name=x&timeoutMs=0", wasmBytes, "timeoutMs"},
		{"?name=x&poolSize=1025", wasmBytes, "poolSize"},
		{"?name=x", "not wasm", "wasm"},
		{"?name=x", "", "wasm"},
	} {
		a.expectInvalid(a.do("POST", "/api/plugins"+tc.query, "application/wasm", tc.body), tc.field)
	}
	r := a.expect(a.do("GET", "/api/plugins", "", ""), 200)
	if list := decode[[]gatehouse.Plugin](t, r); len(list) != 2 || list[0] != p || list[1] != q || r.header.Get("X-Total-Count") != "2" {
		t.Errorf("list %s", r.body)
	}
	r = a.expect(a.do("GET", "/api/plugins?pageSize=1&page=2", "", ""), 200)
	if list := decode[[]gatehouse.Plugin](t, r); len(list) != 1 || list[0] != q || r.header.Get("X-Total-Count") != "2" {
		t.Errorf("page 2 %s", r.body)
	}
	if got := decode[gatehouse.Plugin](t, a.expect(a.do("GET", "/api/plugins/"+p.ID, "", ""), 200)); got != p {
		t.Errorf("get %+v", got)
	}
	a.expect(a.do("GET", "/api/plugins/missing", "", ""), http.StatusNotFound)

	// PATCH changes the name and limits; the id, sha256 and abi may be
	// repeated but not changed.
	got := decode[gatehouse.Plugin](t, a.expect(a.do("PATCH", "/api/plugins/"+p.ID, "",
		`{"name":"renamed","timeoutMs":500,"sha256":"`+p.SHA256+`","abi":"http-wasm","id":"`+p.ID+`"}`), 200))
	want.Name, want.TimeoutMs = "renamed", 500
	if got != want {
		t.Errorf("patched %+v, want %+v", got, want)
	}
	got = decode[gatehouse.Plugin](t, a.expect(a.do("PATCH", "/api/plugins/"+p.ID, "application/json-patch+json",
		`[{"op":"replace","path":"/poolSize","value":4}]`), 200))
	want.PoolSize = 4
	if got != want {
		t.Errorf("json-patched %+v", got)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"sha256":"forged"}`, "sha256"},
		{`{"abi":"other"}`, "abi"},
		{`{"id":"other"}`, "id"},
		{`{"poolsize":2}`, "poolsize"},
	} {
		a.expectInvalid(a.do("PATCH", "/api/plugins/"+p.ID, "", tc.body), tc.field)
	}
	a.expectInvalid(a.do("PATCH", "/api/plugins/"+p.ID, "", `{"poolSize":0}`), "poolSize")
	a.expectInvalid(a.do("PATCH", "/api/plugins/"+p.ID, "", `{"memoryLimitPages":-3}`), "memoryLimitPages")
	a.expect(a.do("PATCH", "/api/plugins/missing", "", `{"name":"x"}`), http.StatusNotFound)

	// PUT replaces the bytes.
	newBytes := wasmBytes + "\x00\x01"
	got = decode[gatehouse.Plugin](t, a.expect(a.do("PUT", "/api/plugins/"+p.ID, "application/wasm", newBytes), 200))
	sum = sha256.Sum256([]byte(newBytes))
	want.SHA256 = hex.EncodeToString(sum[:])
	if got != want {
		t.Errorf("put %+v, want %+v", got, want)
	}
	stored, err := a.b.PluginWasm(t.Context(), p.ID)
	if err != nil || string(stored) != newBytes {
		t.Errorf("stored bytes %q, %v", stored, err)
	}
	a.expectInvalid(a.do("PUT", "/api/plugins/"+p.ID, "application/wasm", "garbage"), "wasm")
	if stored, _ := a.b.PluginWasm(t.Context(), p.ID); string(stored) != newBytes {
		t.Errorf("bad PUT replaced the bytes")
	}
	a.expect(a.do("PUT", "/api/plugins/missing", "application/wasm", wasmBytes), http.StatusNotFound)

	a.expectDeleted(a.do("DELETE", "/api/plugins/"+p.ID, "", ""))
	a.expect(a.do("GET", "/api/plugins/"+p.ID, "", ""), http.StatusNotFound)
	a.expect(a.do("DELETE", "/api/plugins/"+p.ID, "", ""), http.StatusNotFound)
}

func TestPluginUploadLimit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	p := a.mustPlugin("small")
	big := make([]byte, gatehouse.MaxPluginUploadBytes+1)
	copy(big, wasmBytes)

	r := a.send("POST", "/api/plugins?name=big", "application/wasm", bytes.NewReader(big), true)
	a.expect(r, http.StatusRequestEntityTooLarge)
	r = a.send("PUT", "/api/plugins/"+p.ID, "application/wasm", bytes.NewReader(big), true)
	a.expect(r, http.StatusRequestEntityTooLarge)
	if list := decode[[]gatehouse.Plugin](t, a.do("GET", "/api/plugins", "", "")); len(list) != 1 || list[0] != p {
		t.Errorf("oversized uploads changed plugins: %+v", list)
	}

	// Exactly the limit is accepted.
	r = a.send("POST", "/api/plugins?name=max", "application/wasm", bytes.NewReader(big[:gatehouse.MaxPluginUploadBytes]), true)
	a.expect(r, http.StatusCreated)
}
