package embedded

import (
	"context"
	"database/sql"
	"fmt"
)

// Erase deletes from a the messages, delivery events and seals with the
// given ids, behind the relay's back, as anyone holding the file can
// with the sqlite3 shell: it drops the triggers that make those tables
// append-only first (for good: the file stays open to tampering).
//
// It is test support for tamper evidence (relay/verify's tests), never
// called by the relay: a test deletes a row or a seal with it, or
// alters one by erasing it and storing the altered version through
// Insert, AppendEvents or InsertSeal. An id that names nothing stored is
// an error, so that a test cannot tamper with nothing.
func Erase(ctx context.Context, a *Archive, ids ...string) error {
	err := a.write(ctx, func(tx *sql.Tx) error {
		for _, trigger := range []string{"messages_no_delete", "events_no_delete", "seals_no_delete"} {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+trigger); err != nil {
				return err
			}
		}
		for _, id := range ids {
			var erased int64
			for _, table := range []string{"messages", "events", "seals"} {
				res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
				if err != nil {
					return err
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				erased += n
			}
			if erased == 0 {
				return fmt.Errorf("nothing stored under id %s", id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: erasing %d ids: %w", len(ids), err)
	}
	return nil
}
