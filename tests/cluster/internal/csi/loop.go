package csi

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Retry backoff of failed operations: 1s doubling up to 10s. The real sidecars
// use 1s up to 5min (--retry-interval-start/--retry-interval-max); the lower cap
// keeps the tests' recovery waits short.
const (
	retryStart = 1 * time.Second
	retryMax   = 10 * time.Second
	// slowRetry is how long an infeasible expansion waits before it is tried
	// again without a change of the claim (the resizer's "slow set").
	slowRetry = 30 * time.Second
	// resync makes the informers replay their caches now and then, so that a
	// missed trigger is repaired in bounded time.
	resync = time.Minute
	// syncTimeout bounds one sync, API calls included.
	syncTimeout = 30 * time.Second
)

// loop is one controller: a rate-limited work queue of string keys and a sync
// function. sync returns after > 0 to look at the key again later (an operation
// in progress), or an error to retry with backoff.
type loop struct {
	name  string
	queue workqueue.TypedRateLimitingInterface[string]
	sync  func(ctx context.Context, key string) (after time.Duration, err error)
}

func newLoop(name string, sync func(ctx context.Context, key string) (time.Duration, error)) *loop {
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](retryStart, retryMax)
	return &loop{
		name: name,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		sync: sync,
	}
}

func (l *loop) add(key string) { l.queue.Add(key) }

func (l *loop) run(ctx context.Context, workers int) {
	for i := 0; i < workers; i++ {
		go l.worker(ctx)
	}
	go func() {
		<-ctx.Done()
		l.queue.ShutDown()
	}()
}

func (l *loop) worker(ctx context.Context) {
	for {
		key, quit := l.queue.Get()
		if quit {
			return
		}
		syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
		after, err := l.sync(syncCtx, key)
		cancel()
		switch {
		case ctx.Err() != nil:
			l.queue.Forget(key)
		case err != nil:
			klog.InfoS("csi: sync failed, will retry", "controller", l.name, "key", key, "err", err)
			l.queue.AddRateLimited(key)
		case after > 0:
			l.queue.Forget(key)
			l.queue.AddAfter(key, after)
		default:
			l.queue.Forget(key)
		}
		l.queue.Done(key)
	}
}
