package gatehouse

//go:generate go tool templ generate
