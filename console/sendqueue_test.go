package console

import "testing"

func TestSendQueueKeepsOrderAndBound(t *testing.T) {
	q := newSendQueue(3)
	for i := range 3 {
		if !q.push(outItem{frame: &Frame{Seq: uint64(i + 1)}}) {
			t.Fatalf("push %d refused below the limit", i+1)
		}
	}
	if q.push(outItem{frame: &Frame{Seq: 4}}) {
		t.Fatal("a fourth item fit a queue of 3")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("items wait but ready has no token")
	}
	for want := uint64(1); want <= 3; want++ {
		it, ok := q.pop()
		if !ok || it.frame.Seq != want {
			t.Fatalf("pop = %v, %v; want seq %d", it.frame, ok, want)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue returned an item")
	}
	if q.items != nil {
		t.Errorf("an emptied queue keeps its array (len %d, cap %d)", len(q.items), cap(q.items))
	}
	if !q.push(outItem{frame: &Frame{Seq: 5}}) {
		t.Fatal("push refused after the queue emptied")
	}
}
