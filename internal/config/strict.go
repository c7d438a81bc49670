package config

import (
	"errors"
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// DecodeStrict decodes YAML data into out (a pointer to a struct with yaml
// tags) the way Parse decodes the server config: every unknown key is an
// error, every problem is reported at once as "name:line: …". It returns
// the line of each field path ("credentials[0].sinks[1].path") so a
// caller's own validation can point at the file too. Other files (the
// agent's) reuse it so a typo in any security config is caught the same way.
func DecodeStrict(name string, data []byte, out any) (map[string]int, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", name, MaxFileBytes)
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("config: DecodeStrict needs a non-nil pointer, got %T", out)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := map[string]int{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return lines, nil
	}
	root := doc.Content[0]
	var errs []error
	walk(root, rv.Type().Elem(), "", lines, func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	})
	if err := root.Decode(out); err != nil {
		errs = append(errs, decodeErrors(name, err)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return lines, nil
}
