package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse"
)

// running starts s.Run on loopback and returns the bound addresses and a stop
// function that waits for Run to return its error.
func running(t *testing.T, h *harness) (proxy, admin string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- h.srv.Run(ctx, func(p, a net.Addr) { addrs <- [2]string{p.String(), a.String()} })
	}()
	select {
	case a := <-addrs:
		return a[0], a[1], func() error { cancel(); return <-errc }
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return "", "", nil
}

func TestRunListenerLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} }))
	proxy, admin, stop := running(t, h)

	get := func(base, host string, hdr http.Header) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+base+"/", nil)
		req.Host = host
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(proxy, "api.test", http.Header{"X-Big": {strings.Repeat("a", 60<<10)}}); resp.StatusCode != 200 {
		t.Errorf("60 KiB of headers: status %d, want 200", resp.StatusCode)
	}
	if resp := get(proxy, "api.test", http.Header{"X-Big": {strings.Repeat("a", 65<<10)}}); resp.StatusCode != 431 {
		t.Errorf("65 KiB of headers: status %d, want 431", resp.StatusCode)
	}
	if resp := get(admin, "", nil); resp.StatusCode >= 500 {
		t.Errorf("admin listener: status %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestRunShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Write([]byte("done"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slow.Serve(ln)
	t.Cleanup(func() { slow.Close() })

	h := newHarness(t)
	h.group("g")
	s := newService("slow", "g", "slow.test", nil, func(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} })
	s.Targets = []gatehouse.Target{{Host: ln.Addr().String(), Scheme: "http"}}
	h.service(s)
	proxy, _, stop := running(t, h)

	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
		req.Host = "slow.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- 0
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-arrived
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Shutdown has begun: new connections are refused while the one in flight waits.
	for {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			break
		}
		c.Close()
	}
	close(release)
	if code := <-result; code != 200 {
		t.Errorf("in-flight request during shutdown: status %d, want 200", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRunProxyTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir)
	h := newHarness(t, func(c *Config) { c.ProxyTLSCert, c.ProxyTLSKey = cert, key })
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) {
		s.PublicPatterns = []string{"/.*"}
		s.ForceHTTPS = true
	}))
	proxy, _, stop := running(t, h)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", "https://"+proxy+"/", nil)
	req.Host = "api.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("over TLS with forceHttps: status %d, want 200", resp.StatusCode)
	}
	if got := up.lastRequest().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "api.test"},
		DNSNames:     []string{"api.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestRunBadRequestPath: a request line whose path does not decode never
// reaches a handler (net/http refuses it); the client still gets the
// gateway's answer, 400 "bad request path". Other malformed requests keep
// net/http's own 400.
func TestRunBadRequestPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	up := newUpstream(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", up, func(s *gatehouse.Service) { s.PublicPatterns = []string{"/.*"} }))
	proxy, _, stop := running(t, h)
	defer stop()
	raw := func(req string) string {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c)
		return string(b)
	}
	got := raw("GET /a/%zz HTTP/1.1\r\nHost: api.test\r\n\r\n")
	for _, want := range []string{"HTTP/1.1 400 ", "Otoroshi-Error: true\r\n", "Otoroshi-Error-Msg: bad request path\r\n", `{"Otoroshi-Error":"bad request path"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("bad escape: answer lacks %q:\n%s", want, got)
		}
	}
	got = raw("GET /fine%20path HTTP/1.1\r\nHost: api.test\r\nBroken header line\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400 ") || strings.Contains(got, "Otoroshi-Error") {
		t.Errorf("malformed header: want net/http's plain 400, got:\n%s", got)
	}
	got = raw("GET /ok%20path HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("a path with a valid escape: %s", got)
	}
}
