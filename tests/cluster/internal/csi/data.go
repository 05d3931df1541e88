package csi

// The "backend" of the simulated driver: the content of every volume it
// provisions and of every snapshot it cuts, kept as plain directories so that
// tests can tell whether data survived an operation (a data oracle):
//
//	<root>/volumes/<volumeHandle>/     the volume's files
//	<root>/snapshots/<snapshotHandle>/ a copy of the source volume's files
//	<root>/tmp/                        copies in progress (renamed into place)
//
// Nothing mounts these directories: tests write and read them directly. The
// operations follow the CSI calls the sidecars make, in their order:
// CreateVolume (empty, or a copy of a snapshot for a restore) before the PV is
// saved; DeleteVolume before the PV object goes; CreateSnapshot (a copy of the
// volume as it is now) before the content's status names the snapshot handle;
// DeleteSnapshot before the content's finalizer is removed. Expansion leaves
// the content alone. Every operation is idempotent, as CSI calls must be.
//
// The root lies inside the cluster's directory (kcluster passes DIR/csi-data),
// so it is removed with the cluster. An empty root keeps no data.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Layout below the data root; tests outside Go (tests/it/support.rs) rely on it.
const (
	// DataDirName is the data root's name inside the cluster's directory.
	DataDirName     = "csi-data"
	dataVolumes     = "volumes"
	dataSnapshots   = "snapshots"
	dataTmp         = "tmp"
	dataPermissions = 0o755
)

// dataStore keeps volume and snapshot content below root ("" keeps none).
type dataStore struct {
	root string
}

// init creates the root and its volumes and snapshots directories.
func (s dataStore) init() error {
	if s.root == "" {
		return nil
	}
	for _, sub := range []string{dataVolumes, dataSnapshots} {
		if err := os.MkdirAll(filepath.Join(s.root, sub), dataPermissions); err != nil {
			return err
		}
	}
	return nil
}

// validHandle rejects handles that are not a single path element.
func validHandle(handle string) error {
	if handle == "" || handle == "." || handle == ".." || strings.ContainsAny(handle, `/\`) || strings.ContainsRune(handle, 0) {
		return rpcError("InvalidArgument", "invalid handle %q", handle)
	}
	return nil
}

// VolumeDir is where the content of volume handle is kept ("" without a root).
func (s dataStore) VolumeDir(handle string) string {
	if s.root == "" {
		return ""
	}
	return filepath.Join(s.root, dataVolumes, handle)
}

// SnapshotDir is where the content of snapshot handle is kept ("" without a root).
func (s dataStore) SnapshotDir(handle string) string {
	if s.root == "" {
		return ""
	}
	return filepath.Join(s.root, dataSnapshots, handle)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// createVolume is CreateVolume's data part: an empty directory, or with
// fromSnapshot a copy of that snapshot's content. A volume that exists already
// is left as it is (a retried CreateVolume of the same volume).
func (s dataStore) createVolume(handle, fromSnapshot string) error {
	if s.root == "" {
		return nil
	}
	if err := validHandle(handle); err != nil {
		return err
	}
	dst := s.VolumeDir(handle)
	if ok, err := exists(dst); err != nil || ok {
		return err
	}
	if fromSnapshot == "" {
		if err := os.MkdirAll(filepath.Dir(dst), dataPermissions); err != nil {
			return err
		}
		if err := os.Mkdir(dst, dataPermissions); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	}
	if err := validHandle(fromSnapshot); err != nil {
		return err
	}
	src := s.SnapshotDir(fromSnapshot)
	if ok, err := exists(src); err != nil {
		return err
	} else if !ok {
		return rpcError("NotFound", "source snapshot %s not found", fromSnapshot)
	}
	return s.copyInto(src, dst)
}

// deleteVolume is DeleteVolume's data part (a missing volume is no error).
func (s dataStore) deleteVolume(handle string) error {
	if s.root == "" {
		return nil
	}
	if err := validHandle(handle); err != nil {
		return err
	}
	return os.RemoveAll(s.VolumeDir(handle))
}

// cutSnapshot is CreateSnapshot's data part: a copy of the volume's content as
// it is now. An existing snapshot is left as it is (a retried CreateSnapshot).
func (s dataStore) cutSnapshot(volumeHandle, snapshotHandle string) error {
	if s.root == "" {
		return nil
	}
	if err := validHandle(volumeHandle); err != nil {
		return err
	}
	if err := validHandle(snapshotHandle); err != nil {
		return err
	}
	dst := s.SnapshotDir(snapshotHandle)
	if ok, err := exists(dst); err != nil || ok {
		return err
	}
	src := s.VolumeDir(volumeHandle)
	if ok, err := exists(src); err != nil {
		return err
	} else if !ok {
		return rpcError("NotFound", "source volume %s not found", volumeHandle)
	}
	return s.copyInto(src, dst)
}

// deleteSnapshot is DeleteSnapshot's data part (a missing snapshot is no error).
func (s dataStore) deleteSnapshot(handle string) error {
	if s.root == "" {
		return nil
	}
	if err := validHandle(handle); err != nil {
		return err
	}
	return os.RemoveAll(s.SnapshotDir(handle))
}

// copyInto copies the tree src to dst through a temporary directory that is
// renamed into place, so that dst never holds a partial copy.
func (s dataStore) copyInto(src, dst string) error {
	tmpRoot := filepath.Join(s.root, dataTmp)
	if err := os.MkdirAll(tmpRoot, dataPermissions); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), dataPermissions); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(tmpRoot, filepath.Base(dst)+".")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(src, tmp); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if ok, _ := exists(dst); ok {
			return nil // a concurrent attempt of the same call won
		}
		return err
	}
	return nil
}

// copyTree copies the directory src into the existing directory dst: files,
// directories and symbolic links (as links), with their permission bits.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := entry.Info()
		if err != nil {
			return err
		}
		switch {
		case entry.IsDir():
			// Owner-writable, or the copy could not fill it.
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		case entry.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case entry.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return nil // sockets, devices, pipes: not volume content here
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
