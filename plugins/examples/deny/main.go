//go:build wasip1

// Command deny is a Gatehouse plugin that answers every request itself with
// the status, headers and body of its JSON config:
//
//	{"status": 403, "headers": {"Content-Type": "text/plain"}, "body": "go away"}
package main

import (
	"encoding/json"

	"gatehouse/plugins/guest"
)

type config struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

var cfg = config{Status: 403}

func init() {
	if c := guest.Config(); len(c) > 0 {
		if err := json.Unmarshal(c, &cfg); err != nil {
			panic("deny: bad config: " + err.Error())
		}
	}
	guest.HandleRequest(func(_ guest.Request, resp guest.Response) (bool, uint32) {
		resp.SetStatusCode(cfg.Status)
		for k, v := range cfg.Headers {
			resp.Header().Set(k, v)
		}
		if cfg.Body != "" {
			resp.Body().WriteString(cfg.Body)
		}
		return false, 0
	})
}

func main() {}
