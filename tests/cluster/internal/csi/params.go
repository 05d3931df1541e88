package csi

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Fault knobs, read from StorageClass parameters (and, for snapshots, from
// VolumeSnapshotClass parameters, which win over the StorageClass of the source
// volume). They are looked up at every attempt, so re-creating a class under the
// same name changes the behaviour of existing volumes — the way the tests switch a
// fault off again.
const (
	// ParamProvisionDelay makes CreateVolume take this long (Go duration).
	ParamProvisionDelay = "stateful.test/provision-delay"
	// ParamResizeDelay makes ControllerExpandVolume take this long.
	ParamResizeDelay = "stateful.test/resize-delay"
	// ParamSnapshotDelay is the time from cutting a snapshot until it is ready
	// to use (the "upload" phase of real drivers).
	ParamSnapshotDelay = "stateful.test/snapshot-delay"
	// ParamFail lists operations that fail: provision, resize, snapshot, delete
	// (comma-separated).
	ParamFail = "stateful.test/fail"
	// ParamOnlineExpansion "false": the node part of an expansion happens only
	// when a pod that mounts the claim is started after the expansion began.
	ParamOnlineExpansion = "stateful.test/online-expansion"
	// ParamMaxSize: volumes larger than this cannot be created or expanded
	// (OUT_OF_RANGE, which the resizer treats as infeasible).
	ParamMaxSize = "stateful.test/max-size"

	// ParamFSType is the standard external-provisioner parameter for the PV's
	// spec.csi.fsType.
	ParamFSType = "csi.storage.k8s.io/fstype"
)

// Operations ParamFail can name.
const (
	OpProvision = "provision"
	OpResize    = "resize"
	OpSnapshot  = "snapshot"
	OpDelete    = "delete"
)

// Knobs are the parsed fault knobs of one class.
type Knobs struct {
	ProvisionDelay time.Duration
	ResizeDelay    time.Duration
	SnapshotDelay  time.Duration
	Fail           map[string]bool
	OnlineExpand   bool
	MaxSize        *resource.Quantity
}

// maxDelay bounds every configured delay, so a typo cannot wedge a test for hours.
const maxDelay = 10 * time.Minute

// ParseKnobs reads the knobs from class parameters. An invalid value is an error
// (a real driver answers INVALID_ARGUMENT for bad parameters).
func ParseKnobs(params map[string]string) (Knobs, error) {
	k := Knobs{Fail: map[string]bool{}, OnlineExpand: true}
	var errs []string
	dur := func(key string, into *time.Duration) {
		v, ok := params[key]
		if !ok {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("parameter %s=%q: %v", key, v, err))
		case d < 0 || d > maxDelay:
			errs = append(errs, fmt.Sprintf("parameter %s=%q: must be between 0 and %s", key, v, maxDelay))
		default:
			*into = d
		}
	}
	dur(ParamProvisionDelay, &k.ProvisionDelay)
	dur(ParamResizeDelay, &k.ResizeDelay)
	dur(ParamSnapshotDelay, &k.SnapshotDelay)
	if v, ok := params[ParamFail]; ok {
		for _, op := range strings.Split(v, ",") {
			op = strings.TrimSpace(op)
			switch op {
			case "":
			case OpProvision, OpResize, OpSnapshot, OpDelete:
				k.Fail[op] = true
			default:
				errs = append(errs, fmt.Sprintf("parameter %s=%q: unknown operation %q (want %s, %s, %s or %s)",
					ParamFail, v, op, OpProvision, OpResize, OpSnapshot, OpDelete))
			}
		}
	}
	if v, ok := params[ParamOnlineExpansion]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
		case "false":
			k.OnlineExpand = false
		default:
			errs = append(errs, fmt.Sprintf("parameter %s=%q: want \"true\" or \"false\"", ParamOnlineExpansion, v))
		}
	}
	if v, ok := params[ParamMaxSize]; ok {
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, fmt.Sprintf("parameter %s=%q: want a positive quantity", ParamMaxSize, v))
		} else {
			k.MaxSize = &q
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return Knobs{Fail: map[string]bool{}, OnlineExpand: true}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return k, nil
}

// merged returns base overlaid with over (keys of over win).
func merged(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
