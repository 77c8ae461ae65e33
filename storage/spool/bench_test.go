package spool

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// The benchmarks run with fsync on, in t.TempDir (a real disk here, not
// tmpfs: check before trusting the figures). recs/sync shows how many
// records share an fsync: 1 when serial, more as concurrent callers pile
// up behind the fsync in flight.

func benchSpool(b *testing.B) *Spool {
	b.Helper()
	return open(b, Options{Dir: b.TempDir()})
}

func report(b *testing.B, s *Spool, syncs0, recs0 uint64) {
	if syncs := s.syncs.Load() - syncs0; syncs > 0 {
		b.ReportMetric(float64(s.records.Load()-recs0)/float64(syncs), "recs/sync")
	}
}

func BenchmarkAppendSerial(b *testing.B) {
	s := benchSpool(b)
	base := msg(1)
	ctx := context.Background()
	syncs0, recs0 := s.syncs.Load(), s.records.Load()
	b.ResetTimer()
	for i := range b.N {
		m := base
		m.ID = "bench:" + strconv.Itoa(i)
		if err := s.Append(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, s, syncs0, recs0)
}

// BenchmarkAppendParallel runs 16 callers per CPU, like concurrent
// WeChat callbacks; ns/op is wall time per message across all of them.
func BenchmarkAppendParallel(b *testing.B) {
	s := benchSpool(b)
	base := msg(1)
	ctx := context.Background()
	var next atomic.Int64
	syncs0, recs0 := s.syncs.Load(), s.records.Load()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := base
			m.ID = "bench:" + strconv.FormatInt(next.Add(1), 10)
			if err := s.Append(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	report(b, s, syncs0, recs0)
}
