package etcd

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"

	"github.com/registrator/registrator/registry/kv"
)

// standInKV is an etcd KV service that answers what it is told to.
type standInKV struct {
	pb.UnimplementedKVServer
	mu    sync.Mutex
	txn   *pb.TxnResponse
	rng   *pb.RangeResponse
	hang  bool
	ended chan struct{}
}

func (s *standInKV) answer(ctx context.Context) bool {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang {
		select {
		case <-ctx.Done():
		case <-s.ended:
		}
		return false
	}
	return true
}

func (s *standInKV) Txn(ctx context.Context, _ *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !s.answer(ctx) {
		return nil, errors.New("stand-in: no answer")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txn, nil
}

func (s *standInKV) Range(ctx context.Context, _ *pb.RangeRequest) (*pb.RangeResponse, error) {
	if !s.answer(ctx) {
		return nil, errors.New("stand-in: no answer")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng, nil
}

// startStandIn serves kv on loopback and returns a Store for it.
func startStandIn(t *testing.T, kvs *standInKV) *Store {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	kvs.ended = make(chan struct{})
	pb.RegisterKVServer(srv, kvs)
	go srv.Serve(l)
	t.Cleanup(func() { close(kvs.ended); srv.Stop() })
	b := open(t, "etcd://"+l.Addr().String()+"/services", "owner-a", 0)
	return b.Store().(*Store)
}

func rangeOf(kvs ...*mvccpb.KeyValue) *pb.ResponseOp {
	return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: kvs, Count: int64(len(kvs))}}}
}

// A stand-in etcd that answers transactions and reads with too few or too
// many parts, no header, empty parts (a null cannot cross the wire: the
// client decodes it as an empty message): every call returns an error or
// what it could read, none panics.
func TestMalformedAnswers(t *testing.T) {
	header := &pb.ResponseHeader{ClusterId: 1, Revision: 5}
	entry := &mvccpb.KeyValue{Key: []byte("/services/web/a"), Value: []byte("10.0.0.1:80"), Lease: 7}
	for _, tc := range []struct {
		name    string
		txn     *pb.TxnResponse
		rng     *pb.RangeResponse
		listErr string
	}{
		{"no parts", &pb.TxnResponse{Header: header, Succeeded: true}, &pb.RangeResponse{Header: header}, "2 reads"},
		{"one part of two", &pb.TxnResponse{Header: header, Succeeded: true, Responses: []*pb.ResponseOp{rangeOf(entry)}}, &pb.RangeResponse{Header: header, Kvs: []*mvccpb.KeyValue{{}}}, "2 reads"},
		{"three parts of two", &pb.TxnResponse{Header: header, Succeeded: true, Responses: []*pb.ResponseOp{rangeOf(), rangeOf(), rangeOf()}}, &pb.RangeResponse{}, "2 reads"},
		{"no header", &pb.TxnResponse{Succeeded: true, Responses: []*pb.ResponseOp{rangeOf(), rangeOf()}}, &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{}, entry}}, "header false"},
		{"empty parts and entries", &pb.TxnResponse{Header: header, Succeeded: true, Responses: []*pb.ResponseOp{{}, rangeOf(&mvccpb.KeyValue{}, entry)}}, &pb.RangeResponse{Header: header, Count: 3}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startStandIn(t, &standInKV{txn: tc.txn, rng: tc.rng})
			lists, token, err := st.ListSnapshot(ctx(t), "/services/", "/registrator/_/entries/")
			if tc.listErr != "" && (err == nil || !strings.Contains(err.Error(), tc.listErr)) || tc.listErr == "" && err != nil {
				t.Fatalf("ListSnapshot: %v, want an error with %q", err, tc.listErr)
			}
			if err == nil && (len(lists) != 2 || len(lists[1]) == 0 || lists[1][len(lists[1])-1].Key != "/services/web/a") {
				t.Fatalf("ListSnapshot: %+v, want the entry it holds", lists)
			}
			if _, err := st.Unchanged(ctx(t), "1,5,0,0", "/services/", "/registrator/_/entries/"); err != nil {
				t.Logf("Unchanged: %v", err)
			}
			_ = token
			if _, _, err := st.Get(ctx(t), "/registrator/_/leases/owner-a"); err != nil {
				t.Logf("Get: %v", err)
			}
			if err := st.Commit(ctx(t), "", []kv.Op{{Key: "/services/web/a", Delete: true}}); err != nil {
				t.Logf("Commit: %v", err)
			}
		})
	}
}

// A stand-in etcd that accepts every call and never answers: each returns
// by its context's end.
func TestHungServer(t *testing.T) {
	st := startStandIn(t, &standInKV{hang: true})
	for name, call := range map[string]func(context.Context) error{
		"Ping": st.Ping,
		"List": func(ctx context.Context) error { _, err := st.List(ctx, "/services/", "/registrator/"); return err },
		"Get":  func(ctx context.Context) error { _, _, err := st.Get(ctx, "/registrator/x"); return err },
		"Commit": func(ctx context.Context) error {
			return st.Commit(ctx, "", []kv.Op{{Key: "/services/web/a", Value: []byte("x")}})
		},
	} {
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(c)
		cancel()
		if err == nil {
			t.Errorf("%s on a server that never answers: nil error", name)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s took %s, past its context's 300 ms", name, took)
		}
	}
}
