package consul

import "time"

// How requests to the agent are bounded. Every call the daemon makes
// carries a context with a deadline: the bridge gives each backend call
// its -timeout, the monitor's and the bridge's pings their own, and each
// blocking query (Notify's watch of its canary, consulkv's watch of its
// session) BlockingTimeout of its wait. The HTTP client has no overall
// Timeout: one short enough to catch an agent that accepts the
// connection and never answers would cut the blocking queries, which
// the agent rightly holds for their whole wait. As a backstop for a
// request made without a deadline, the transport gives up on an answer
// whose headers have not come within ResponseHeaderTimeout, longer than
// any blocking query may take.
const (
	// BlockingWait is the wait of the daemon's blocking queries.
	BlockingWait = 5 * time.Minute
	// ResponseHeaderTimeout is the transport's backstop.
	ResponseHeaderTimeout = BlockingWait + BlockingWait/16 + time.Minute
)

// BlockingTimeout bounds a blocking query that waits up to wait: the agent
// adds up to wait/16 of jitter, and the answer needs a moment to come.
func BlockingTimeout(wait time.Duration) time.Duration {
	return wait + wait/16 + 10*time.Second
}
