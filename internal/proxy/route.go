package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Route is one role of an http target: the methods and paths it allows.
// A path is exact ("/v1/chat/completions") or a prefix ending in "/*"
// ("/v1/models/*" matches "/v1/models/" and everything below it, not
// "/v1/models" itself). A method "*" matches any method.
type Route struct {
	Role    string
	Methods []string
	Paths   []string
}

// ErrBadPath is returned by CleanPath for paths the proxy refuses to
// forward: they could reach another resource than the one policy saw.
var ErrBadPath = errors.New("proxy: path rejected")

// CleanPath checks the escaped path of a request (as sent on the wire,
// after /proxy/{target}) and returns it decoded. It refuses rather than
// repairs: dot segments (also percent-encoded), empty segments, encoded
// slashes and backslashes, NUL and control bytes, and bad escapes, so the
// path policy matched is byte for byte the path the upstream routes on.
func CleanPath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", fmt.Errorf("%w: must start with /", ErrBadPath)
	}
	lower := strings.ToLower(escaped)
	for _, bad := range []string{"%2f", "%5c", "%00", "\\"} {
		if strings.Contains(lower, bad) {
			return "", fmt.Errorf("%w: encoded slash, backslash or NUL", ErrBadPath)
		}
	}
	for i := 0; i < len(escaped); i++ {
		if c := escaped[i]; c < 0x21 || c == 0x7f || c == '#' || c == '?' {
			return "", fmt.Errorf("%w: control byte, space, ? or #", ErrBadPath)
		}
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("%w: bad escape", ErrBadPath)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: encoded control byte", ErrBadPath)
		}
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		// Servlet containers drop ";params" from a segment before resolving
		// dots, so "..;x" is ".." upstream: judge the segment without them.
		bare, _, _ := strings.Cut(s, ";")
		switch {
		case bare == "." || bare == "..":
			return "", fmt.Errorf("%w: dot segment", ErrBadPath)
		case s == "" && i != len(segs)-1:
			return "", fmt.Errorf("%w: empty segment", ErrBadPath)
		}
	}
	return p, nil
}

// matchPath reports whether a clean path fits a pattern.
func matchPath(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == pattern
}

// router finds the roles whose methods and paths fit a request.
type router struct {
	routes []Route // sorted by role name, so the order of policy checks is stable
}

func newRouter(routes []Route) (*router, error) {
	rs := append([]Route(nil), routes...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Role < rs[j].Role })
	for _, r := range rs {
		if r.Role == "" || len(r.Methods) == 0 || len(r.Paths) == 0 {
			return nil, fmt.Errorf("proxy: role %q needs a name, methods and paths", r.Role)
		}
		for _, p := range r.Paths {
			base := strings.TrimSuffix(p, "*")
			if _, err := CleanPath(base); err != nil || strings.Contains(base, "*") || (base != p && !strings.HasSuffix(base, "/")) {
				return nil, fmt.Errorf("proxy: role %q: bad path pattern %q", r.Role, p)
			}
		}
	}
	return &router{routes: rs}, nil
}

// match returns the roles that allow method on path, in role-name order.
func (rt *router) match(method, path string) []string {
	var out []string
	for _, r := range rt.routes {
		if !methodAllowed(r.Methods, method) {
			continue
		}
		for _, p := range r.Paths {
			if matchPath(p, path) {
				out = append(out, r.Role)
				break
			}
		}
	}
	return out
}

func methodAllowed(methods []string, m string) bool {
	for _, x := range methods {
		if x == "*" || x == m {
			return true
		}
	}
	return false
}
