package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// gatehouse export and gatehouse apply talk to a running gateway's admin
// API (contract section 12), with the admin key from the environment.

var (
	adminURLFlag = flagSpec{name: "admin", env: "GATEHOUSE_ADMIN_URL", def: "http://127.0.0.1:9000", help: "the gateway's admin listener URL"}
	exportFlags  = []flagSpec{
		adminURLFlag,
		{name: "o", env: "", def: "", shownDef: "standard output", help: "write the YAML document to this file"},
	}
	applyFlags = []flagSpec{
		adminURLFlag,
		{name: "f", env: "", def: "", help: "the document to apply (YAML or JSON); required"},
		{name: "dry-run", env: "", def: "false", help: "print the plan and write nothing", isBool: true},
		{name: "prune", env: "", def: "false", help: "delete what the document lacks (never admin-api-group or an admin key)", isBool: true},
	}
)

// adminClient calls the admin API with the key of GATEHOUSE_ADMIN_CLIENT_ID
// and GATEHOUSE_ADMIN_CLIENT_SECRET.
type adminClient struct {
	base       string
	id, secret string
	http       *http.Client
}

// checkAdminURL wants an http:// or https:// URL with a host.
func checkAdminURL(s source) (string, error) {
	u, err := url.Parse(s.value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return "", s.bad("want the admin listener's URL, such as http://127.0.0.1:9000")
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func newAdminClient(v map[string]source, getenv func(string) string) (*adminClient, error) {
	base, err := checkAdminURL(v["admin"])
	if err != nil {
		return nil, err
	}
	c := &adminClient{base: base, id: getenv("GATEHOUSE_ADMIN_CLIENT_ID"), secret: getenv("GATEHOUSE_ADMIN_CLIENT_SECRET"),
		http: &http.Client{Timeout: 5 * time.Minute}}
	if c.id == "" || c.secret == "" {
		return nil, errors.New("set GATEHOUSE_ADMIN_CLIENT_ID and GATEHOUSE_ADMIN_CLIENT_SECRET to an admin API key")
	}
	return c, nil
}

// do sends one request and returns the body of a 2xx answer; any other
// answer is an error carrying the API's message and field.
func (c *adminClient) do(ctx context.Context, method, path, ct string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Otoroshi-Client-Id", c.id)
	req.Header.Set("Otoroshi-Client-Secret", c.secret)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(out, &e) != nil || e.Error == "" {
			return nil, fmt.Errorf("%s %s: %s", method, path, res.Status)
		}
		if e.Field != "" {
			return nil, fmt.Errorf("%s (%d, field %s)", e.Error, res.StatusCode, e.Field)
		}
		return nil, fmt.Errorf("%s (%d)", e.Error, res.StatusCode)
	}
	return out, nil
}

// runExport runs gatehouse export [-o FILE].
func runExport(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	v, err := parseFlags("export", exportFlags, args, getenv)
	if err != nil {
		return err
	}
	out := v["o"]
	if out.value != "" {
		if err := checkFolder(out, filepath.Dir(out.value)); err != nil {
			return err
		}
		if fi, err := os.Stat(out.value); err == nil && fi.IsDir() {
			return out.bad("it is a folder, not a file")
		}
	}
	c, err := newAdminClient(v, getenv)
	if err != nil {
		return err
	}
	doc, err := c.do(ctx, http.MethodGet, "/api/export", "", nil)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if out.value == "" {
		_, err := stdout.Write(doc)
		return err
	}
	// The document holds the keys' secrets: readable by its owner only.
	if err := os.WriteFile(out.value, doc, 0o600); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// runApply runs gatehouse apply -f FILE [--dry-run] [--prune] and prints
// the plan, one line per change, then a summary.
func runApply(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	v, err := parseFlags("apply", applyFlags, args, getenv)
	if err != nil {
		return err
	}
	f := v["f"]
	if f.value == "" {
		return usageError{"apply needs -f FILE: the document to apply (gatehouse apply --help)"}
	}
	var dryRun, prune bool
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"dry-run", &dryRun}, {"prune", &prune}} {
		s := v[b.name]
		if *b.dst, err = strconv.ParseBool(s.value); err != nil {
			return s.bad("want true or false")
		}
	}
	doc, err := os.ReadFile(f.value)
	if err != nil {
		return f.bad("cannot read it: " + pathReason(err))
	}
	c, err := newAdminClient(v, getenv)
	if err != nil {
		return err
	}
	q := url.Values{}
	if dryRun {
		q.Set("dryRun", "true")
	}
	if prune {
		q.Set("prune", "true")
	}
	path := "/api/apply"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	ct := "application/yaml"
	if t := bytes.TrimSpace(doc); len(t) > 0 && t[0] == '{' {
		ct = "application/json"
	}
	body, err := c.do(ctx, http.MethodPost, path, ct, bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	var res struct {
		Created, Updated, Deleted []string
		Revision                  int64
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("apply: unexpected answer: %w", err)
	}
	for _, l := range []struct {
		mark    string
		entries []string
	}{{"+", res.Created}, {"~", res.Updated}, {"-", res.Deleted}} {
		for _, e := range l.entries {
			fmt.Fprintf(stdout, "%s %s\n", l.mark, e)
		}
	}
	n := len(res.Created) + len(res.Updated) + len(res.Deleted)
	summary := fmt.Sprintf("%d created, %d updated, %d deleted", len(res.Created), len(res.Updated), len(res.Deleted))
	switch {
	case dryRun:
		fmt.Fprintf(stdout, "dry run: %s; nothing written (revision %d)\n", summary, res.Revision)
	case n == 0:
		fmt.Fprintf(stdout, "no changes: the gateway already holds this document (revision %d)\n", res.Revision)
	default:
		fmt.Fprintf(stdout, "applied: %s in revision %d\n", summary, res.Revision)
	}
	return nil
}
