package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/wechat-relay/wechat-relay/relay/export"
)

// WriteCSV writes the table id of r as CSV, a header row first; with id
// "" every table, each headed by a row naming it ("table", id) and
// followed by an empty row. Text cells a spreadsheet would run as a
// formula are neutralised as the eDiscovery export's are.
func WriteCSV(w io.Writer, r *Report, id string) error {
	tables := r.Tables
	if id != "" {
		t, ok := r.Table(id)
		if !ok {
			return fmt.Errorf("%w: the %s report has no table %q", ErrBadRequest, r.Name, id)
		}
		tables = []Table{t}
	}
	cw := csv.NewWriter(w)
	for i, t := range tables {
		if id == "" {
			if i > 0 {
				if err := cw.Write([]string{}); err != nil {
					return err
				}
			}
			if err := cw.Write([]string{"table", t.ID}); err != nil {
				return err
			}
		}
		head := make([]string, len(t.Columns))
		for j, c := range t.Columns {
			head[j] = c.ID
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		for _, row := range t.Rows {
			cells := make([]string, len(row))
			for j, v := range row {
				switch v := v.(type) {
				case int64:
					cells[j] = strconv.FormatInt(v, 10)
				case string:
					cells[j] = v
				default:
					cells[j] = fmt.Sprint(v)
				}
			}
			if err := cw.Write(export.SpreadsheetSafe(cells)); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
