package convlog

import (
	"context"
	"sync"
)

// keyedLocks serialises what one replica does under a key (the writes to one conversation):
// writers of one conversation would only race each other for its next sequence number, and
// every lost race costs the database another round of reads and inserts. Writers on other
// replicas still race; the unique keys of the log still decide. So this spares the database
// needless retries under load and never carries correctness.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

// keyedLock is the lock of one key, kept while anyone holds or waits for it.
type keyedLock struct {
	held  chan struct{} // holds a token while locked
	users int
}

func newKeyedLocks() *keyedLocks {
	return &keyedLocks{locks: make(map[string]*keyedLock)}
}

// lock waits for the lock of key and returns its unlock function. It returns ctx's error when
// ctx ends first.
func (k *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	select {
	case l.held <- struct{}{}:
		return func() {
			<-l.held
			k.leave(key, l)
		}, nil
	case <-ctx.Done():
		k.leave(key, l)
		return nil, ctx.Err()
	}
}

// leave forgets the lock of key when nobody holds or waits for it any more.
func (k *keyedLocks) leave(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.users--; l.users == 0 {
		delete(k.locks, key)
	}
}
