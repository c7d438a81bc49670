package scan

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// maxManifest bounds the files parsed as YAML; larger files are still
// scanned as text, only the base64 decoding of Secret data is skipped.
const maxManifest = 1 << 20

// k8sEntry is one value of a Secret's data (decoded) or stringData.
type k8sEntry struct {
	key     string
	value   []byte // decoded
	off     int    // offset of the value in the file
	length  int    // length of the value as written in the file
	encoded bool
}

// parseK8sSecrets returns the data and stringData values of every
// Kubernetes Secret in a (multi-document) YAML or JSON file. Documents that
// do not parse are skipped: the input is untrusted.
func parseK8sSecrets(data []byte) []k8sEntry {
	if len(data) > maxManifest {
		return nil
	}
	lineOff := []int{0}
	for i, c := range data {
		if c == '\n' {
			lineOff = append(lineOff, i+1)
		}
	}
	offset := func(n *yaml.Node) int {
		if n.Line < 1 || n.Line > len(lineOff) {
			return 0
		}
		o := lineOff[n.Line-1] + n.Column - 1
		if o < 0 || o > len(data) {
			return lineOff[n.Line-1]
		}
		return o
	}
	var out []k8sEntry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docs := 0; docs < 1000; docs++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) || err != nil {
			break
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := doc.Content[0]
		if v := mapGet(m, "kind"); v == nil || v.Value != "Secret" {
			continue
		}
		for _, field := range []string{"data", "stringData"} {
			dm := mapGet(m, field)
			if dm == nil || dm.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(dm.Content); i += 2 {
				k, v := dm.Content[i], dm.Content[i+1]
				if v.Kind != yaml.ScalarNode || v.Value == "" {
					continue
				}
				e := k8sEntry{key: k.Value, value: []byte(v.Value), off: offset(v), length: len(v.Value)}
				if field == "data" {
					b, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields([]byte(v.Value)), nil)))
					if err != nil {
						continue
					}
					e.value, e.encoded = b, true
				}
				out = append(out, e)
			}
		}
	}
	return out
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

var k8sRule = &rule{id: "kubernetes-secret-data", desc: "value in the data of a Kubernetes Secret",
	priority: 2, remediation: remGeneric}

// findK8sSecrets decodes Secret data and scans each value with every rule;
// a secret-named key whose value no rule recognises is still reported.
// Findings point at the encoded value in the manifest.
func findK8sSecrets(s *fileScan) {
	for _, e := range parseK8sSecrets(s.data) {
		if !e.encoded {
			continue // stringData is plain text, already scanned in place
		}
		sub := &fileScan{d: s.d, path: s.path, data: e.value}
		sub.collect()
		end := min(len(s.data), e.off+e.length)
		if len(sub.cands) > 0 {
			for _, c := range sub.cands {
				c.start, c.end = e.off, end
				s.emit(c)
			}
			continue
		}
		v := bytes.TrimSpace(e.value)
		if (secretName(e.key) || isKeyFileName(e.key)) && len(v) >= 6 && !isPlaceholder(v) && entropy(v) >= 2.5 {
			s.emit(candidate{rule: k8sRule, start: e.off, end: end, secret: v})
		}
	}
}

func isKeyFileName(k string) bool {
	for _, suf := range []string{".pem", ".key", ".p12", ".pfx", ".dockerconfigjson", ".dockercfg"} {
		if len(k) >= len(suf) && k[len(k)-len(suf):] == suf {
			return true
		}
	}
	return false
}
