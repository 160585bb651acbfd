package gatehouse

import (
	"net/netip"
	"regexp"
	"strings"
)

// maxName bounds names and ids so a single write cannot bloat every list.
const (
	maxName = 256
	maxText = 4096
)

func checkID(field, id string) error {
	if id == "" {
		return Invalid(field, "must not be empty")
	}
	if len(id) > maxName {
		return Invalid(field, "must be at most %d characters", maxName)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return Invalid(field, "may hold only letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

func checkName(field, name string) error {
	if strings.TrimSpace(name) == "" {
		return Invalid(field, "must not be empty")
	}
	if len(name) > maxName {
		return Invalid(field, "must be at most %d characters", maxName)
	}
	return nil
}

// Validate checks a group; the id must already be set.
func (g *Group) Validate() error {
	if err := checkID("id", g.ID); err != nil {
		return err
	}
	if err := checkName("name", g.Name); err != nil {
		return err
	}
	if len(g.Description) > maxText {
		return Invalid("description", "must be at most %d characters", maxText)
	}
	return nil
}

// FillDefaults gives a new group a generated id when it has none.
func (g *Group) FillDefaults() {
	if g.ID == "" {
		g.ID = NewID()
	}
}

// ParseIPMatch parses an ipFiltering entry: an IP address or a CIDR range.
func ParseIPMatch(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks a service on its own; that its group and plugins exist is
// the store's to check.
func (s *Service) Validate() error {
	if err := checkID("id", s.ID); err != nil {
		return err
	}
	if err := checkID("groupId", s.GroupID); err != nil {
		return err
	}
	if err := checkName("name", s.Name); err != nil {
		return err
	}
	if s.Env == "" {
		return Invalid("env", "must not be empty")
	}
	for _, f := range []struct{ field, v string }{{"env", s.Env}, {"domain", s.Domain}, {"subdomain", s.Subdomain}} {
		if err := checkHostPart(f.field, f.v); err != nil {
			return err
		}
	}
	if s.Host() == "" {
		return Invalid("domain", "service needs a domain or subdomain")
	}
	if len(s.Targets) == 0 {
		return Invalid("targets", "a service needs at least one target")
	}
	for _, t := range s.Targets {
		if strings.TrimSpace(t.Host) == "" {
			return Invalid("targets", "every target needs a host")
		}
		if strings.ContainsAny(t.Host, "/ ?#@") {
			return Invalid("targets", "target host %q must be host[:port]", t.Host)
		}
		if t.Scheme != "http" && t.Scheme != "https" {
			return Invalid("targets", "target scheme must be http or https")
		}
	}
	if !strings.HasPrefix(s.Root, "/") {
		return Invalid("root", "must start with /")
	}
	if s.MatchingRoot != nil && !strings.HasPrefix(*s.MatchingRoot, "/") {
		return Invalid("matchingRoot", "must start with /")
	}
	for _, p := range s.PublicPatterns {
		if _, err := regexp.Compile(p); err != nil {
			return Invalid("publicPatterns", "bad regexp %q", p)
		}
	}
	for _, p := range s.PrivatePatterns {
		if _, err := regexp.Compile(p); err != nil {
			return Invalid("privatePatterns", "bad regexp %q", p)
		}
	}
	for k := range s.AdditionalHeaders {
		if !validHeaderName(k) {
			return Invalid("additionalHeaders", "bad header name %q", k)
		}
	}
	for k := range s.MatchingHeaders {
		if !validHeaderName(k) {
			return Invalid("matchingHeaders", "bad header name %q", k)
		}
	}
	for _, list := range []struct {
		field string
		v     []string
	}{{"ipFiltering.whitelist", s.IPFiltering.Whitelist}, {"ipFiltering.blacklist", s.IPFiltering.Blacklist}} {
		for _, e := range list.v {
			if _, err := ParseIPMatch(e); err != nil {
				return Invalid(list.field, "%q is not an IP address or CIDR range", e)
			}
		}
	}
	for _, p := range s.Plugins {
		if p.Ref == "" {
			return Invalid("plugins", "every plugin needs a ref")
		}
		if strings.HasPrefix(p.Config, SealedPrefix) {
			return Invalid("plugins", "a plugin config must not start with %q", SealedPrefix)
		}
	}
	return nil
}

// FillDefaults gives a new service a generated id and defaults its target scheme.
func (s *Service) FillDefaults() {
	if s.ID == "" {
		s.ID = NewID()
	}
	for i := range s.Targets {
		if s.Targets[i].Scheme == "" {
			s.Targets[i].Scheme = "http"
		}
	}
	if s.Root == "" {
		s.Root = "/"
	}
	if s.Env == "" {
		s.Env = "prod"
	}
	s.Env = strings.ToLower(s.Env)
	s.Domain = strings.ToLower(s.Domain)
	s.Subdomain = strings.ToLower(s.Subdomain)
	if s.Targets == nil {
		s.Targets = []Target{}
	}
	if s.PublicPatterns == nil {
		s.PublicPatterns = []string{}
	}
	if s.PrivatePatterns == nil {
		s.PrivatePatterns = []string{}
	}
	if s.AdditionalHeaders == nil {
		s.AdditionalHeaders = map[string]string{}
	}
	if s.MatchingHeaders == nil {
		s.MatchingHeaders = map[string]string{}
	}
	if s.IPFiltering.Whitelist == nil {
		s.IPFiltering.Whitelist = []string{}
	}
	if s.IPFiltering.Blacklist == nil {
		s.IPFiltering.Blacklist = []string{}
	}
	if s.Plugins == nil {
		s.Plugins = []PluginRef{}
	}
}

func checkHostPart(field, v string) error {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '*') {
			return Invalid(field, "may hold only a-z, 0-9, '-', '.' and '*'")
		}
	}
	if strings.Contains(v, "*") && field != "subdomain" {
		return Invalid(field, "'*' is allowed in subdomain only")
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

// Validate checks an API key; the client id and secret must already be set.
func (k *APIKey) Validate() error {
	if err := checkID("clientId", k.ClientID); err != nil {
		return err
	}
	if k.ClientSecret == "" {
		return Invalid("clientSecret", "must not be empty")
	}
	if len(k.ClientSecret) > maxName || strings.ContainsAny(k.ClientSecret, "\x00\r\n") {
		return Invalid("clientSecret", "must be at most %d characters without control characters", maxName)
	}
	if strings.HasPrefix(k.ClientSecret, SealedPrefix) {
		return Invalid("clientSecret", "must not start with %q", SealedPrefix)
	}
	if len(k.ClientName) > maxName {
		return Invalid("clientName", "must be at most %d characters", maxName)
	}
	if len(k.Description) > maxText {
		return Invalid("description", "must be at most %d characters", maxText)
	}
	for _, e := range k.AuthorizedEntities {
		id, ok := strings.CutPrefix(e, "group_")
		if !ok {
			id, ok = strings.CutPrefix(e, "service_")
		}
		if !ok || checkID("authorizedEntities", id) != nil {
			return Invalid("authorizedEntities", "%q must be group_<id> or service_<id>", e)
		}
	}
	if k.ThrottlingQuota < 0 {
		return Invalid("throttlingQuota", "must not be negative")
	}
	if k.Rotation.RotationEvery < 1 || k.Rotation.RotationEvery > MaxGracePeriod {
		return Invalid("rotation.rotationEvery", "must be between 1 and %d hours", MaxGracePeriod)
	}
	if k.Rotation.GracePeriod < 0 || k.Rotation.GracePeriod > MaxGracePeriod {
		return Invalid("rotation.gracePeriod", "must be between 0 and %d hours", MaxGracePeriod)
	}
	if k.DailyQuota < 0 {
		return Invalid("dailyQuota", "must not be negative")
	}
	if k.MonthlyQuota < 0 {
		return Invalid("monthlyQuota", "must not be negative")
	}
	if k.ValidUntil != nil && *k.ValidUntil < 0 {
		return Invalid("validUntil", "must be epoch milliseconds")
	}
	return nil
}

// FillDefaults generates a missing client id and secret and replaces nil
// collections with empty ones, so JSON always shows [] and {}.
func (k *APIKey) FillDefaults() {
	if k.ClientID == "" {
		k.ClientID = NewClientID()
	}
	if k.ClientSecret == "" {
		k.ClientSecret = NewClientSecret()
	}
	if k.AuthorizedEntities == nil {
		k.AuthorizedEntities = []string{}
	}
	if k.Metadata == nil {
		k.Metadata = map[string]string{}
	}
	if k.Tags == nil {
		k.Tags = []string{}
	}
	if k.Rotation == (Rotation{}) {
		k.Rotation = Rotation{RotationEvery: DefaultRotationEvery, GracePeriod: DefaultGracePeriod}
	}
}

// SealedPrefix starts a secret encrypted at rest; no clear secret or plugin
// config may start with it, so the two are never confused.
const SealedPrefix = "enc:v1:"

// MaxGracePeriod bounds a rotation's grace period: ten years, in hours.
const MaxGracePeriod = 87600

// Validate checks a plugin's name and limits.
func (p *Plugin) Validate() error {
	if err := checkID("id", p.ID); err != nil {
		return err
	}
	if err := checkName("name", p.Name); err != nil {
		return err
	}
	if p.MemoryLimitPages < 1 || p.MemoryLimitPages > MaxPluginMemoryPages {
		return Invalid("memoryLimitPages", "must be between 1 and %d", MaxPluginMemoryPages)
	}
	if p.TimeoutMs < 1 || p.TimeoutMs > MaxPluginTimeoutMs {
		return Invalid("timeoutMs", "must be between 1 and %d", MaxPluginTimeoutMs)
	}
	if p.PoolSize < 1 || p.PoolSize > MaxPluginPoolSize {
		return Invalid("poolSize", "must be between 1 and %d", MaxPluginPoolSize)
	}
	if p.ABI != PluginABI {
		return Invalid("abi", "must be %q", PluginABI)
	}
	return nil
}
