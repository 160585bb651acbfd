// Package gatehouse holds the domain types every other package speaks:
// service groups, service descriptors, API keys and plugins, with their JSON
// shape (Otoroshi's legacy field names), their defaults and their validation.
// It imports nothing of ours, so store, server, plugins and views may all
// depend on it.
package gatehouse

// AdminGroupID is the built-in group whose API keys may call the admin API.
const AdminGroupID = "admin-api-group"

// Group is a service group: API keys authorized on it open every service in it.
type Group struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Target is one upstream of a service; requests are spread round robin.
type Target struct {
	Host   string `json:"host"`
	Scheme string `json:"scheme"`
}

// IPFiltering lists IP addresses or CIDR ranges matched against the client address.
type IPFiltering struct {
	Whitelist []string `json:"whitelist"`
	Blacklist []string `json:"blacklist"`
}

// PluginRef attaches a plugin to a service with a config string the guest reads once.
type PluginRef struct {
	Ref      string `json:"ref"`
	Config   string `json:"config"`
	FailOpen bool   `json:"failOpen"`
}

// Service is a service descriptor: how requests are matched and where they go.
type Service struct {
	ID                      string            `json:"id"`
	GroupID                 string            `json:"groupId"`
	Name                    string            `json:"name"`
	Env                     string            `json:"env"`
	Domain                  string            `json:"domain"`
	Subdomain               string            `json:"subdomain"`
	Targets                 []Target          `json:"targets"`
	Root                    string            `json:"root"`
	MatchingRoot            *string           `json:"matchingRoot"`
	Enabled                 bool              `json:"enabled"`
	PublicPatterns          []string          `json:"publicPatterns"`
	PrivatePatterns         []string          `json:"privatePatterns"`
	AdditionalHeaders       map[string]string `json:"additionalHeaders"`
	MatchingHeaders         map[string]string `json:"matchingHeaders"`
	MaintenanceMode         bool              `json:"maintenanceMode"`
	BuildMode               bool              `json:"buildMode"`
	ForceHTTPS              bool              `json:"forceHttps"`
	SendOtoroshiHeadersBack bool              `json:"sendOtoroshiHeadersBack"`
	IPFiltering             IPFiltering       `json:"ipFiltering"`
	Plugins                 []PluginRef       `json:"plugins"`
}

// DefaultService returns a service with every field at its contract default;
// JSON bodies are decoded on top of it so absent fields keep these values.
func DefaultService() Service {
	return Service{
		Env:                     "prod",
		Targets:                 []Target{},
		Root:                    "/",
		Enabled:                 true,
		PublicPatterns:          []string{},
		PrivatePatterns:         []string{},
		AdditionalHeaders:       map[string]string{},
		MatchingHeaders:         map[string]string{},
		SendOtoroshiHeadersBack: true,
		IPFiltering:             IPFiltering{Whitelist: []string{}, Blacklist: []string{}},
		Plugins:                 []PluginRef{},
	}
}

// Host is the host name the service answers on: the non-empty parts of
// subdomain, env (left out when "prod") and domain, joined by dots.
func (s *Service) Host() string {
	h := ""
	for _, p := range []string{s.Subdomain, s.envPart(), s.Domain} {
		if p == "" {
			continue
		}
		if h != "" {
			h += "."
		}
		h += p
	}
	return h
}

func (s *Service) envPart() string {
	if s.Env == "prod" {
		return ""
	}
	return s.Env
}

// MaxBulkKeys bounds one bulk import of API keys (POST /api/apikeys/_bulk).
const MaxBulkKeys = 10_000

// DefaultQuota is the throttling, daily and monthly quota of a key that names none.
const DefaultQuota = 10_000_000

// APIKey is a client's credential and its limits.
type APIKey struct {
	ClientID           string            `json:"clientId"`
	ClientSecret       string            `json:"clientSecret"`
	ClientName         string            `json:"clientName"`
	Description        string            `json:"description"`
	AuthorizedEntities []string          `json:"authorizedEntities"`
	Enabled            bool              `json:"enabled"`
	AllowClientIDOnly  bool              `json:"allowClientIdOnly"`
	ReadOnly           bool              `json:"readOnly"`
	ThrottlingQuota    int64             `json:"throttlingQuota"`
	DailyQuota         int64             `json:"dailyQuota"`
	MonthlyQuota       int64             `json:"monthlyQuota"`
	ValidUntil         *int64            `json:"validUntil"` // epoch milliseconds
	Metadata           map[string]string `json:"metadata"`
	Tags               []string          `json:"tags"`
	Rotation           Rotation          `json:"rotation"`
	// PreviousSecretValidUntil is read-only: while the secret replaced by the
	// last rotation is still accepted, when it stops being (epoch ms). A body
	// that carries it is accepted and the value ignored.
	PreviousSecretValidUntil *int64 `json:"previousSecretValidUntil"`
	// PreviousSecret is the secret the last rotation replaced, accepted until
	// PreviousSecretValidUntil; it is never shown.
	PreviousSecret string `json:"-"`
}

// Rotation is a key's secret rotation settings (contract section 14), in hours.
type Rotation struct {
	Enabled       bool  `json:"enabled"`
	RotationEvery int64 `json:"rotationEvery"`
	GracePeriod   int64 `json:"gracePeriod"`
}

// Rotation defaults: a month and a week.
const (
	DefaultRotationEvery = 744
	DefaultGracePeriod   = 168
)

// PreviousSecretAt returns the previous secret and until when it is
// accepted, at nowMs; ok is false when there is none any more.
func (k *APIKey) PreviousSecretAt(nowMs int64) (secret string, until int64, ok bool) {
	if k.PreviousSecret == "" || k.PreviousSecretValidUntil == nil || *k.PreviousSecretValidUntil <= nowMs {
		return "", 0, false
	}
	return k.PreviousSecret, *k.PreviousSecretValidUntil, true
}

// DefaultAPIKey returns a key with every field at its contract default.
func DefaultAPIKey() APIKey {
	return APIKey{
		AuthorizedEntities: []string{},
		Enabled:            true,
		ThrottlingQuota:    DefaultQuota,
		DailyQuota:         DefaultQuota,
		MonthlyQuota:       DefaultQuota,
		Metadata:           map[string]string{},
		Tags:               []string{},
		Rotation:           Rotation{RotationEvery: DefaultRotationEvery, GracePeriod: DefaultGracePeriod},
	}
}

// GroupEntity and ServiceEntity name what an API key is authorized on.
func GroupEntity(groupID string) string     { return "group_" + groupID }
func ServiceEntity(serviceID string) string { return "service_" + serviceID }

// AuthorizedOn reports whether one of the key's entities names the service or its group.
func (k *APIKey) AuthorizedOn(serviceID, groupID string) bool {
	for _, e := range k.AuthorizedEntities {
		if e == GroupEntity(groupID) || e == ServiceEntity(serviceID) {
			return true
		}
	}
	return false
}

// Plugin is an uploaded WebAssembly module and the limits its instances run under.
type Plugin struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	SHA256           string `json:"sha256"`
	ABI              string `json:"abi"`
	MemoryLimitPages uint32 `json:"memoryLimitPages"`
	TimeoutMs        int64  `json:"timeoutMs"`
	PoolSize         int    `json:"poolSize"`
}

// Plugin defaults and bounds (contract section 10).
const (
	PluginABI                      = "http-wasm"
	DefaultPluginMemoryPages       = 256
	DefaultPluginTimeoutMs         = 100
	DefaultPluginPoolSize          = 8
	MaxPluginMemoryPages           = 65536
	MaxPluginTimeoutMs             = 60_000
	MaxPluginPoolSize              = 1024
	MaxPluginUploadBytes     int64 = 32 << 20
)

// DefaultPlugin returns a plugin with the contract's default limits.
func DefaultPlugin() Plugin {
	return Plugin{
		ABI:              PluginABI,
		MemoryLimitPages: DefaultPluginMemoryPages,
		TimeoutMs:        DefaultPluginTimeoutMs,
		PoolSize:         DefaultPluginPoolSize,
	}
}

// Page selects one page of a list: Page counts from 1; PageSize defaults to 50.
type Page struct {
	Page     int
	PageSize int
}

// Page size bounds of list endpoints.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Offset and Limit turn a page into SQL terms; a zero Page means the first page of 50.
func (p Page) Limit() int {
	if p.PageSize <= 0 {
		return DefaultPageSize
	}
	return p.PageSize
}

func (p Page) Offset() int {
	if p.Page <= 1 {
		return 0
	}
	return (p.Page - 1) * p.Limit()
}

// ServiceFilter narrows a service list: by group, and by a case-insensitive
// substring of name, id or host.
type ServiceFilter struct {
	GroupID string
	Q       string
}

// KeyFilter narrows an API key list. GroupID keeps keys authorized on the
// group; ServiceID keeps keys authorized on the service or on its group; Q is
// a case-insensitive substring of client id or name.
type KeyFilter struct {
	GroupID   string
	ServiceID string
	Enabled   *bool
	Q         string
	Sort      string // "" or "created" (creation order), "name", "lastUsed" (most recent first)
}

// Key list orders (KeyFilter.Sort).
const (
	SortCreated  = "created"
	SortName     = "name"
	SortLastUsed = "lastUsed"
)

// QuotaUsage is the JSON of GET /api/apikeys/{clientId}/quotas.
type QuotaUsage struct {
	AuthorizedCallsPerSec   int64 `json:"authorizedCallsPerSec"`
	CurrentCallsPerSec      int64 `json:"currentCallsPerSec"`
	RemainingCallsPerSec    int64 `json:"remainingCallsPerSec"`
	AuthorizedCallsPerDay   int64 `json:"authorizedCallsPerDay"`
	CurrentCallsPerDay      int64 `json:"currentCallsPerDay"`
	RemainingCallsPerDay    int64 `json:"remainingCallsPerDay"`
	AuthorizedCallsPerMonth int64 `json:"authorizedCallsPerMonth"`
	CurrentCallsPerMonth    int64 `json:"currentCallsPerMonth"`
	RemainingCallsPerMonth  int64 `json:"remainingCallsPerMonth"`
}

// Counter is a key's call count in one calendar period: Period is a day
// ("2006-01-02") or a month ("2006-01") in the configured time zone. Written
// by a flush, Count is the calls admitted since the last flush, added to the
// stored quota counter; Calls is the same for the usage history, which a
// quota reset does not zero; LastUsed the epoch milliseconds of the last call.
type Counter struct {
	ClientID string
	Period   string
	Count    int64
	Calls    int64
	LastUsed int64
}

// Session is a dashboard login; only a hash of its token is stored.
type Session struct {
	TokenHash string
	Username  string
	CSRFToken string
	ExpiresAt int64  // epoch seconds
	Role      string // the user's role, as GetSession reads it
}
