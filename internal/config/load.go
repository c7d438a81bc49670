package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds the config file.
const MaxFileBytes = 4 << 20

// UnmarshalYAML parses "90s", "15m", "1h30m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 15m", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: bad duration %q (want e.g. 90s, 15m, 1h)", n.Line, n.Value)}}
	}
	if v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration %q is negative", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads, strictly decodes and defaults the file, then validates it.
// The error joins every problem, each prefixed with file:line.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, MaxFileBytes)
	}
	data := make([]byte, st.Size())
	if _, err := f.Read(data); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	cfg, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes data strictly without defaults or validation. name is used
// in error messages.
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", name, MaxFileBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := &Config{File: name, lines: map[string]int{}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return cfg, nil
	}
	root := doc.Content[0]
	var errs []error
	walk(root, reflect.TypeOf(Config{}), "", cfg.lines, func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	})
	if err := root.Decode(cfg); err != nil {
		errs = append(errs, decodeErrors(name, err)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// decodeErrors turns yaml.v3's "line N: …" messages into "file:N: …".
func decodeErrors(name string, err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{fmt.Errorf("%s: %w", name, err)}
	}
	out := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if num, tail, ok := strings.Cut(rest, ": "); ok {
				if _, perr := strconv.Atoi(num); perr == nil {
					out = append(out, fmt.Errorf("%s:%s: %s", name, num, tail))
					continue
				}
			}
		}
		out = append(out, fmt.Errorf("%s: %s", name, msg))
	}
	return out
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk checks n against type t, reporting keys t does not have, and
// records the line of every path for Validate's messages.
func walk(n *yaml.Node, t reflect.Type, path string, lines map[string]int, report func(int, string, ...any)) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	lines[path] = n.Line
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				report(n.Line, "%s: want a mapping", displayPath(path))
			}
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				report(k.Line, "unknown key %q in %s", k.Value, displayPath(path))
				continue
			}
			walk(v, ft, join(path, k.Value), lines, report)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				report(n.Line, "%s: want a mapping", displayPath(path))
			}
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lines, report)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag != "!!null" {
				report(n.Line, "%s: want a list", displayPath(path))
			}
			return
		}
		for i, c := range n.Content {
			walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines, report)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			// An inlined struct's keys sit at this level (Target.HTTP).
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		m[tag] = f.Type
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func displayPath(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

// Line returns the line of a field path, or the nearest enclosing path that
// has one (0 when unknown).
func (c *Config) Line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return c.lines[""]
}

// Errorf formats a problem at a field path as "file:line: path: message".
func (c *Config) Errorf(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	name := c.File
	if name == "" {
		name = "config"
	}
	if l := c.Line(path); l > 0 {
		return fmt.Errorf("%s:%d: %s: %s", name, l, path, msg)
	}
	return fmt.Errorf("%s: %s: %s", name, path, msg)
}
