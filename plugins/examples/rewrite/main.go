//go:build wasip1

// Command rewrite is a Gatehouse plugin that sets request and response
// headers and rewrites a path prefix. Its config string is JSON:
//
//	{"requestHeaders": {"X-From-Gateway": "yes"},
//	 "responseHeaders": {"X-Rewritten": "1"},
//	 "fromPrefix": "/old/", "toPrefix": "/new/"}
package main

import (
	"encoding/json"
	"strings"

	"gatehouse/plugins/guest"
)

type config struct {
	RequestHeaders  map[string]string `json:"requestHeaders"`
	ResponseHeaders map[string]string `json:"responseHeaders"`
	FromPrefix      string            `json:"fromPrefix"`
	ToPrefix        string            `json:"toPrefix"`
}

var cfg config

func init() {
	if c := guest.Config(); len(c) > 0 {
		if err := json.Unmarshal(c, &cfg); err != nil {
			panic("rewrite: bad config: " + err.Error()) // refused when the instance starts
		}
	}
	guest.HandleRequest(func(req guest.Request, _ guest.Response) (bool, uint32) {
		for k, v := range cfg.RequestHeaders {
			req.Header().Set(k, v)
		}
		if cfg.FromPrefix != "" {
			if uri := req.URI(); strings.HasPrefix(uri, cfg.FromPrefix) {
				req.SetURI(cfg.ToPrefix + strings.TrimPrefix(uri, cfg.FromPrefix))
			}
		}
		return true, 0
	})
	guest.HandleResponse(func(_ uint32, _ guest.Request, resp guest.Response, _ bool) {
		for k, v := range cfg.ResponseHeaders {
			resp.Header().Set(k, v)
		}
	})
}

func main() {}
