package server

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestPluginBodyLimitThroughTheGateway: on a service whose plugin buffers
// the request body, a body over 8 MiB is 413 and never reaches the upstream,
// whether its length is announced or not; a body under the limit goes
// through, buffered.
func TestPluginBodyLimitThroughTheGateway(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	// A generous guest deadline: copying megabytes into the guest under
	// -race on a busy machine is slow, and this test is about the limit.
	rb := h.upload("readbody", guests(t)["readbody"], "&timeoutMs=10000")
	up := newUpstream(t)
	h.service(newService("buf", "g", "buf.test", up, public))
	h.attach("buf", ref(rb.ID, ""))
	proxy, _, stop := running(t, h.harness)
	defer stop()

	post := func(body io.Reader, length int64) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+proxy+"/upload", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "buf.test"
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	small := strings.Repeat("x", 1<<20)
	resp, b := post(strings.NewReader(small), int64(len(small)))
	if resp.StatusCode != 200 {
		t.Fatalf("1 MiB: status %d %q", resp.StatusCode, b)
	}
	up.mu.Lock()
	got, gotLen := up.body, up.last.Header.Get("X-Body-Len")
	up.mu.Unlock()
	if gotLen != strconv.Itoa(len(small)) || got != small {
		t.Fatalf("1 MiB: upstream X-Body-Len %q, %d bytes", gotLen, len(got))
	}
	hits := up.hits.Load()

	big := bytes.Repeat([]byte("y"), 9<<20)
	for _, tc := range []struct {
		name   string
		length int64
	}{{"announced", int64(len(big))}, {"chunked", -1}} {
		// io.MultiReader hides the length from the client: -1 sends it chunked.
		resp, b := post(io.MultiReader(bytes.NewReader(big)), tc.length)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Otoroshi-Error-Msg") != "request body too large" ||
			b != `{"Otoroshi-Error":"request body too large"}` {
			t.Errorf("9 MiB %s: %d %q %q, want 413 request body too large", tc.name, resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"), b)
		}
	}
	if got := up.hits.Load(); got != hits {
		t.Errorf("the upstream saw %d requests with bodies over the limit", got-hits)
	}

	// A body that breaks its framing while the plugin reads it is the
	// client's fault there too: 400, not a plugin failure.
	answers := exchangeRaw(t, proxy, false, "POST /upload HTTP/1.1\r\nHost: buf.test\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\nzz\r\n0\r\n\r\n"+smuggled)
	if len(answers) != 1 || answers[0].StatusCode != 400 || answers[0].Header.Get("Otoroshi-Error-Msg") != "bad request" {
		t.Errorf("broken chunked body through the plugin: %d answers, first %d %q", len(answers), answers[0].StatusCode, answers[0].Header.Get("Otoroshi-Error-Msg"))
	}
	if got := up.hits.Load(); got != hits {
		t.Errorf("the upstream saw %d requests after a broken body", got-hits)
	}
}
