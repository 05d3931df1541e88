package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// The API server itself rejects an invalid quantity, with its own message.
func TestInvalidQuantityRejected(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	body := `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"bad"},
	  "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"10GB-x"}}}}`
	err := client.CoreV1().RESTClient().Post().Namespace(ns).Resource("persistentvolumeclaims").
		SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(context.Background()).Error()
	if err == nil {
		t.Fatal("PVC with storage 10GB-x was accepted")
	}
	if !apierrors.IsBadRequest(err) {
		t.Errorf("want 400 BadRequest, got %v (%T)", err, err)
	}
	if !strings.Contains(err.Error(), "quantities must match the regular expression") {
		t.Fatalf("unexpected message: %v", err)
	}
	t.Logf("API server said: %v", err)
}

// Service-account tokens are real: a token from the TokenRequest API (and one from
// `kubectl create token`) authenticates as the ServiceAccount, which RBAC then
// forbids to list pods (403 naming the account, not 401).
func TestServiceAccountToken(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kcluster, "kubectl", "--kubeconfig", kubeconfig, "-n", ns, "create", "token", "robot").Output()
	if err != nil {
		t.Fatalf("kubectl create token: %v", err)
	}
	user := "system:serviceaccount:" + ns + ":robot"
	for name, token := range map[string]string{"TokenRequest": tr.Status.Token, "kubectl create token": strings.TrimSpace(string(out))} {
		cfg := rest.AnonymousClientConfig(restConfig)
		cfg.BearerToken = token
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: SelfSubjectReview: %v", name, err)
		}
		if got := review.Status.UserInfo.Username; got != user {
			t.Errorf("%s: authenticated as %q, want %q", name, got, user)
		}
		_, err = sa.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), user) {
			t.Errorf("%s: listing pods: want 403 Forbidden for %s, got %v", name, user, err)
		}
	}
}
