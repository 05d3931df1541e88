// Package crds embeds the snapshot.storage.k8s.io/v1 CustomResourceDefinitions
// (VolumeSnapshotClass, VolumeSnapshotContent, VolumeSnapshot) exactly as the
// external-snapshotter project publishes them in its client module's config/crd
// directory. The YAML files are verbatim copies below a three-line header naming
// their origin; crds_test.go compares them byte for byte with the module cache.
//
// The module is not a dependency of this Go module (requiring it would raise
// golang.org/x/net, x/sys, structured-merge-diff and others above the versions
// Kubernetes v1.36.3 pins for its own components), so the files cannot be
// embedded straight from the module cache; the test fetches the module with
// `go mod download` instead.
package crds

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Module and Version name the published Go module the CRDs come from, and Dir is
// the directory inside it.
const (
	Module  = "github.com/kubernetes-csi/external-snapshotter/client/v8"
	Version = "v8.6.0"
	Dir     = "config/crd"
)

//go:embed *.yaml
var files embed.FS

// headerLines is the number of comment lines put in front of each upstream file.
const headerLines = 3

// Files returns the upstream file contents (header removed) by file name.
func Files() (map[string][]byte, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		body, err := stripHeader(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out[e.Name()] = body
	}
	return out, nil
}

func stripHeader(data []byte) ([]byte, error) {
	rest := data
	for i := 0; i < headerLines; i++ {
		if !bytes.HasPrefix(rest, []byte("# ")) {
			return nil, fmt.Errorf("missing provenance header line %d", i+1)
		}
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("truncated header")
		}
		rest = rest[nl+1:]
	}
	return rest, nil
}

// CRDs decodes the embedded definitions, sorted by name.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	fs, err := Files()
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for name, body := range fs {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(body), 4096)
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := dec.Decode(crd); err != nil {
				if err == io.EOF {
					break
				}
				return nil, fmt.Errorf("decoding %s: %w", name, err)
			}
			if crd.Name == "" {
				continue
			}
			// The published files carry an empty status block; the apiserver fills it.
			crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
			out = append(out, crd)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
