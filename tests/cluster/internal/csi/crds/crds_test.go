package crds

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The embedded files must be byte-for-byte the ones the published module ships.
// `go mod download` fetches the module through the module proxy (or finds it in
// the module cache) without touching go.mod or go.sum.
func TestFilesMatchPublishedModule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to fetch %s@%s: %v", Module, Version, err)
	}
	out, err := exec.Command(goBin, "mod", "download", "-json", Module+"@"+Version).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go mod download %s@%s: %v %s %s", Module, Version, err, out, stderr)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download: %v %s %s", err, info.Error, out)
	}
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("embedded %d files, want 3", len(files))
	}
	for name, body := range files {
		upstream, err := os.ReadFile(filepath.Join(info.Dir, Dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(body, upstream) {
			t.Errorf("%s differs from %s@%s/%s/%s", name, Module, Version, Dir, name)
		}
	}
}

func TestCRDsDecode(t *testing.T) {
	list, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"volumesnapshotclasses.snapshot.storage.k8s.io",
		"volumesnapshotcontents.snapshot.storage.k8s.io",
		"volumesnapshots.snapshot.storage.k8s.io",
	}
	if len(list) != len(want) {
		t.Fatalf("got %d CRDs, want %d", len(list), len(want))
	}
	for i, crd := range list {
		if crd.Name != want[i] {
			t.Errorf("CRD %d is %s, want %s", i, crd.Name, want[i])
		}
		served := false
		for _, v := range crd.Spec.Versions {
			if v.Name == "v1" && v.Served && v.Storage {
				served = true
			}
		}
		if !served {
			t.Errorf("%s does not serve and store v1", crd.Name)
		}
	}
}
