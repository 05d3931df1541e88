package storage

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubectl-stateful/tests/cluster/internal/csi"
)

func TestProvisionedDir(t *testing.T) {
	pv := func(path string, ann map[string]string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv", Annotations: ann},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path}}},
		}
	}
	provisioned := map[string]string{"pv.kubernetes.io/provisioned-by": "kubernetes.io/host-path"}
	for _, tc := range []struct {
		pv   *corev1.PersistentVolume
		want string
	}{
		{pv("/tmp/hostpath_pv/0a1b", provisioned), "/tmp/hostpath_pv/0a1b"},
		{pv("/tmp/hostpath_pv/0a1b", nil), ""},                                                  // static PV: not ours to remove
		{pv("/tmp/hostpath_pv", provisioned), ""},                                               // never the shared parent
		{pv("/tmp/hostpath_pv/../etc", provisioned), ""},                                        // cleaned path leaves the base
		{pv("/tmp/hostpath_pv/a/b", provisioned), ""},                                           // not what the provisioner makes
		{pv("/var/lib/something", provisioned), ""},                                             // elsewhere
		{&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Annotations: provisioned}}, ""}, // not host-path
	} {
		got, ok := provisionedDir(tc.pv)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("provisionedDir(%v) = %q, %v; want %q", tc.pv.Spec.PersistentVolumeSource, got, ok, tc.want)
		}
	}
}

func TestClasses(t *testing.T) {
	defaults := 0
	for _, sc := range Classes() {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			defaults++
			if sc.Name != DefaultClass || sc.Provisioner != "kubernetes.io/host-path" {
				t.Errorf("default class %s/%s", sc.Name, sc.Provisioner)
			}
		}
		switch sc.Provisioner {
		case csi.DriverName:
			if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
				t.Errorf("%s (%s) must allow expansion", sc.Name, sc.Provisioner)
			}
		default:
			if sc.AllowVolumeExpansion != nil {
				t.Errorf("%s allows expansion, but %s cannot expand", sc.Name, sc.Provisioner)
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d default classes", defaults)
	}
	var names []string
	for _, sc := range Classes() {
		names = append(names, sc.Name)
	}
	if want := []string{DefaultClass, LocalClass, FastClass, FastImmediateClass}; !slices.Equal(names, want) {
		t.Errorf("classes %v, want %v", names, want)
	}
}
