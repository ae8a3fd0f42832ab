package emulator

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The SQLite store's two directions between memory and the file: write
// puts one transaction's changes into the file, load reads the file back
// into memory when the store opens.

// sqlTable is how the rows of one memory table are written to SQL.
type sqlTable struct {
	upsert func(w *journalWriter, row any) error
	delete string // the DELETE of one row by its key
}

func kindTable[V any](k *kind[V]) sqlTable {
	key, _, _ := strings.Cut(k.cols, ",")
	return sqlTable{
		upsert: func(w *journalWriter, row any) error { return w.exec(k.update, k.args(row.(*V))...) },
		delete: "DELETE FROM " + k.table + " WHERE " + key + " = ?",
	}
}

// expiringTable writes the keys kept until a time (nonces, revocations,
// chain tokens).
func expiringTable(table, key string, group string) sqlTable {
	cols, vals, sets := key+", until", "?, ?", "until = excluded.until"
	if group != "" {
		cols, vals, sets = key+", "+group+", until", "?, ?, ?", group+" = excluded."+group+", until = excluded.until"
	}
	insert := "INSERT INTO " + table + " (" + cols + ") VALUES (" + vals + ") ON CONFLICT (" + key + ") DO UPDATE SET " + sets
	return sqlTable{
		upsert: func(w *journalWriter, row any) error {
			e := row.(*expiring)
			if group != "" {
				return w.exec(insert, e.Key, e.Group, nanos(e.Until))
			}
			return w.exec(insert, e.Key, nanos(e.Until))
		},
		delete: "DELETE FROM " + table + " WHERE " + key + " = ?",
	}
}

// sqlTables are the memory tables by name (memTable.name).
var sqlTables = map[string]sqlTable{
	"users": kindTable(sqlUsers),
	"authenticators": {
		upsert: func(w *journalWriter, row any) error {
			m := row.(*memAuth)
			a := &m.Authenticator
			pub := m.pub[:]
			if !m.packed {
				pub = pubBytes(a.PublicKey)
			}
			return w.exec(sqlAuths.update, a.ID, a.UserID, a.KeyID, a.AAID, pub, int64(a.SignCounter), a.Name, a.DeviceID, a.Type,
				nanos(a.CreatedAt), a.Deleted)
		},
		delete: "DELETE FROM authenticators WHERE id = ?",
	},
	"transactions":    kindTable(sqlTxs),
	"dispatch_tokens": kindTable(sqlTokens),
	"sessions":        kindTable(sqlSessions),
	"inbox":           kindTable(sqlInbox),
	"intents":         kindTable(sqlIntents),
	"login_requests":  kindTable(sqlLogins),
	"pairings":        kindTable(sqlPairings),
	"refresh_tokens":  kindTable(sqlRefresh),
	"chains":          kindTable(sqlChains),
	"nonces":          expiringTable("nonces", "nonce", ""),
	"revoked":         expiringTable("revoked", "jti", ""),
	"chain_tokens":    expiringTable("chain_tokens", "jti", "chain_id"),
}

// runGroup runs a group of Updates (see SQLiteStore.Update) under the
// memory store's write lock, each as MemoryStore.Update would on its own,
// then commits the changes of those that succeeded to the file in one
// SQLite transaction (writeGroup) before the lock is released. If that
// fails, they are undone, newest first, and since any member may have
// read, or refused on, an earlier member's change that now never was,
// each member runs again as a group of its own: the one whose write fails
// fails with that error (ErrUnavailable), the others get the answer they
// would have got alone. (An Update's function may run more than once,
// as on PostgreSQL, which runs a transaction again on a serialization
// failure.) A member whose function panics is undone and its panic is
// raised again on its own goroutine (Update). It returns the
// transactions that committed, whose wake-ups the caller publishes (and
// frees them) once it has handed the next group on, before it tells the
// members their results.
func (s *SQLiteStore) runGroup(group []*groupedUpdate) []*memTx {
	m := s.mem
	m.mu.Lock()
	done, ok := s.runAndWrite(group, nil)
	if !ok && len(group) > 1 {
		done = done[:0]
		for i := range group {
			done, _ = s.runAndWrite(group[i:i+1], done)
		}
	}
	m.mu.Unlock()
	return done
}

// runAndWrite runs rs on memory one after the other, with the memory
// store's write lock held, and writes the changes of those that succeeded
// in one SQLite transaction. It appends to done the transactions whose
// changes stay (to be published and freed once the lock is released). If
// the write fails, every member that ran is undone, newest first, and
// fails with its error, and ok is false.
func (s *SQLiteStore) runAndWrite(rs []*groupedUpdate, done []*memTx) (_ []*memTx, ok bool) {
	m := s.mem
	type ran struct {
		r         *groupedUpdate
		tx        *memTx
		lastEvent int64 // m.lastEvent before tx's events
	}
	var kept []ran
	var sets []*changeSet
	for _, r := range rs {
		r.err, r.panicked = nil, nil
		if m.closed {
			r.err = unavailable(errClosed)
			continue
		}
		tx := newMemTx(m, true)
		commit, err := keeps(r.run(tx))
		r.err = err
		if !commit {
			tx.rollback()
			tx.free()
			continue
		}
		before := m.lastEvent
		for _, e := range tx.events {
			m.lastEvent++
			e.ID = m.lastEvent
			m.events = append(m.events, e)
		}
		if len(tx.changes) > 0 || len(tx.events) > 0 || tx.cutEvents != 0 {
			sets = append(sets, &changeSet{rows: tx.changes, events: tx.events, cutEvents: tx.cutEvents, lastEvent: m.lastEvent})
		}
		if len(tx.events) > 0 {
			tx.wake = append(tx.wake, eventsWaitKey)
		}
		kept = append(kept, ran{r, tx, before})
	}
	if len(sets) > 0 {
		if jerr := s.writeGroup(context.WithoutCancel(rs[0].ctx), sets); jerr != nil {
			for i := len(kept) - 1; i >= 0; i-- {
				d := kept[i]
				n := len(m.events) - len(d.tx.events)
				clear(m.events[n:])
				m.events, m.lastEvent = m.events[:n], d.lastEvent
				d.tx.rollback()
				d.tx.free()
				d.r.err = jerr
			}
			return done, false
		}
	}
	for _, d := range kept {
		done = append(done, d.tx)
	}
	return done, true
}

// write commits one transaction's changes to the file (the MemoryStore's
// journal, for an Update of the memory store itself: the SQLite store's
// own Updates commit in groups, runGroup).
func (s *SQLiteStore) write(ctx context.Context, c *changeSet) error {
	return s.writeGroup(ctx, []*changeSet{c})
}

// writeGroup commits the changes of a group of transactions to the file,
// in one SQLite transaction, in order. It runs under the memory store's
// write lock: one at a time.
//
// The commit runs on the driver's connection (database/sql's Conn.Raw),
// its BEGIN, writes and COMMIT each a statement prepared once on that
// connection: database/sql's work per statement, and the driver's parse
// of BEGIN and COMMIT in each transaction, were a quarter of a commit's
// CPU that was not the WAL's writes and sync.
//
// SQLite's connection stays on synchronous=NORMAL: every commit is written
// to the WAL before write returns (so kill -9 loses none), and with
// synchronous=FULL the store then syncs the WAL itself when the change
// must be on stable storage (mustSync), before the memory store's lock is
// released: no one can read the change, and no one is answered, before it
// is durable. That is the sync SQLite's FULL would make (an fdatasync of
// the WAL after the commit's frames), without switching the connection
// between FULL and NORMAL by a pragma, parsed each time, around the
// commits that need not sync.
//
// The commits of a group (the Updates that queued while the one before
// was written and synced, see SQLiteStore.Update) share one SQLite
// transaction and one sync, still under the lock: the sync is never
// outside it, where the memory store would show a change before it is
// durable and every answer that read after it would have to wait for the
// sync too (a phone's long-poll may be woken early, a backend's
// "succeeded" may not). A lone approval's commits are serial, each a
// group of one, so grouping does not make one approval cheaper; it makes
// many at once cheaper (ARCHITECTURE.md, issue 9).
func (s *SQLiteStore) writeGroup(ctx context.Context, sets []*changeSet) error {
	if s.broken != nil {
		return unavailable(s.broken)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return unavailable(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		w := s.writer(ctx, dc)
		if err := w.exec("BEGIN IMMEDIATE"); err != nil {
			return err
		}
		var err error
		for _, c := range sets {
			if s.writeFault != nil {
				if err = s.writeFault(c); err != nil {
					break
				}
			}
			if err = writeChanges(w, c); err != nil {
				break
			}
		}
		if err == nil {
			err = w.exec("COMMIT")
		}
		if err != nil {
			// A failed COMMIT may leave the transaction open (SQLite
			// rolls some failures back itself; then this ROLLBACK fails,
			// harmlessly).
			_ = w.exec("ROLLBACK")
		}
		return err
	})
	if err != nil {
		return unavailable(err)
	}
	mustSync := false
	for _, c := range sets {
		mustSync = mustSync || c.mustSync()
	}
	if s.full && mustSync {
		if err := s.syncWAL(); err != nil {
			// SQLite has committed: the change is in its WAL, perhaps on
			// disk, and cannot be taken back, while the memory store
			// undoes it. Rather than go on with the file and memory
			// apart, the store takes no more writes; a restart reads the
			// file again. (A failed sync inside SQLite's own FULL commit
			// leaves the same doubt: its frames stay in the WAL.)
			s.broken = fmt.Errorf("a sync of %s failed (%w); restart the emulator", s.walPath, err)
			return unavailable(s.broken)
		}
	}
	return nil
}

// syncWAL makes every commit written so far durable: an fdatasync of the
// -wal file. It is the file SQLite writes (walPath: beside the database
// file SQLite names itself, so a symlinked --db is followed as SQLite
// follows it, and a stray file beside the link is never the one synced),
// in place, for as long as its
// connection is open: with locking_mode=EXCLUSIVE and journal_mode=WAL
// SQLite deletes the WAL only when the connection closes (or leaves WAL
// mode, which nothing asks for), and with no journal_size_limit it does
// not truncate it either. So the file is opened at the first sync and kept
// while the connection lasts; should database/sql ever open another
// connection, writer drops it and the next sync opens the new one. (A stat
// of the path at every sync, to check, cost more than a 20th of a commit's
// CPU.) At NORMAL, SQLite still syncs what keeps the file sound on its
// own: the WAL before a checkpoint copies it into the database, the
// database after, and a new WAL header when the log starts over.
func (s *SQLiteStore) syncWAL() error {
	if s.wal == nil {
		f, err := os.Open(s.walPath)
		if err != nil {
			return err
		}
		s.wal = f
	}
	return s.syncFile(s.wal)
}

// journalWriter runs the journal's statements on the driver's connection.
type journalWriter struct {
	ctx   context.Context
	conn  driver.ConnPrepareContext
	stmts map[string]driver.Stmt
	args  []driver.NamedValue
}

// writer is the journal's writer on the driver connection dc, with the
// statements prepared on it. They belong to dc: if database/sql ever gives
// another connection (it replaced a broken one), the old ones are
// forgotten, not used.
func (s *SQLiteStore) writer(ctx context.Context, dc any) *journalWriter {
	if dc != s.jconn || s.jw == nil {
		s.jconn = dc
		s.jw = &journalWriter{stmts: map[string]driver.Stmt{}}
		if s.wal != nil { // the WAL of the connection gone
			s.wal.Close()
			s.wal = nil
		}
	}
	s.jw.ctx = ctx
	s.jw.conn, _ = dc.(driver.ConnPrepareContext)
	return s.jw
}

// exec runs query with args, preparing it the first time.
func (w *journalWriter) exec(query string, args ...any) error {
	st := w.stmts[query]
	if st == nil {
		if w.conn == nil {
			return errors.New("the SQLite driver's connection cannot prepare statements")
		}
		var err error
		if st, err = w.conn.PrepareContext(w.ctx, query); err != nil {
			return err
		}
		w.stmts[query] = st
	}
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return errors.New("the SQLite driver's statements cannot run with a context")
	}
	w.args = w.args[:0]
	for i, a := range args {
		switch a.(type) {
		case nil, string, int64, bool, []byte:
		default: // int and the like, as database/sql converts them
			v, err := driver.DefaultParameterConverter.ConvertValue(a)
			if err != nil {
				return fmt.Errorf("argument %d of %q: %w", i+1, query, err)
			}
			a = v
		}
		w.args = append(w.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	_, err := ex.ExecContext(w.ctx, w.args)
	clear(w.args) // no row kept alive by the buffer
	return err
}

// close closes the prepared statements (the store is closing).
func (w *journalWriter) close() error {
	var errs []error
	for q, st := range w.stmts {
		errs = append(errs, st.Close())
		delete(w.stmts, q)
	}
	return errors.Join(errs...)
}

// mustSync reports whether a transaction must be on stable storage before
// it is answered (with synchronous=FULL). Three kinds need not, because
// losing them to a power loss changes nothing anyone relies on:
//   - Device-Signature nonces alone (a long-poll's read of its inbox):
//     a nonce only has to outlive its signature's freshness (60 s), and a
//     machine that lost power is not serving again within that; a replay
//     meanwhile would read an inbox, changing nothing;
//   - sessions alone (the challenge of a request the inbox delivered,
//     and dropping one): a session lost makes the answer to its challenge
//     refused as unknown, never accepted, and the phone's next inbox read
//     is given a new one; a session that spends something (a redeemed
//     token, a counter) comes with that row, which syncs;
//   - the sweep's removals of what expired: the next sweep removes it again.
//
// Everything else (enrolments, approvals, redeemed tokens, counters,
// decisions, events) is synced before it is answered. Either way a commit
// is in the WAL file before it is answered, so kill -9 loses none of them;
// only a power loss can lose one that was not synced.
func (c *changeSet) mustSync() bool {
	if len(c.events) > 0 {
		return true
	}
	for _, ch := range c.rows {
		if ch.row != sweptRow && ch.table != "nonces" && ch.table != "sessions" {
			return true
		}
	}
	return false
}

func writeChanges(w *journalWriter, c *changeSet) error {
	for _, ch := range c.rows {
		var err error
		if ch.table == "meta" { // never deleted
			err = w.exec("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", ch.key, ch.row.([]byte))
		} else if tab, ok := sqlTables[ch.table]; !ok {
			err = fmt.Errorf("emulator store: no SQL table for %q", ch.table)
		} else if ch.row == nil || ch.row == sweptRow {
			err = w.exec(tab.delete, ch.key)
		} else {
			err = tab.upsert(w, ch.row)
		}
		if err != nil {
			return fmt.Errorf("write %s %q: %w", ch.table, ch.key, err)
		}
	}
	// The newest event ID given is the newest event's; event_seq keeps it
	// only for when the sweep removes the newest events too, so it is
	// written when the sweep removes events, not with every event.
	if c.cutEvents != 0 {
		if err := w.exec("DELETE FROM events WHERE id <= ?", c.cutEvents); err != nil {
			return err
		}
		if err := w.exec("UPDATE event_seq SET last = ?", c.lastEvent); err != nil {
			return err
		}
	}
	for _, e := range c.events {
		if err := w.exec(sqlEvents.insert, sqlEvents.args(e)...); err != nil {
			return err
		}
	}
	return nil
}

// load reads every row of the file into memory, in one read transaction.
func (s *SQLiteStore) load(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t := &sqlTx{ctx: ctx, tx: tx, d: sqliteDialect}
	m := s.mem
	if err := firstErr(
		loadKind(t, sqlUsers, m.users, func(u *User) *User { return u }),
		loadKind(t, sqlAuths, m.auths, packAuth),
		loadKind(t, sqlTxs, m.txs, func(x *Transaction) *Transaction { return x }),
		loadKind(t, sqlTokens, m.tokens, func(x *DispatchToken) *DispatchToken { return x }),
		loadKind(t, sqlSessions, m.sessions, func(x *Session) *Session { return x }),
		loadKind(t, sqlInbox, m.inbox, func(x *InboxItem) *InboxItem { m.seq = max(m.seq, x.Seq); return x }),
		loadKind(t, sqlIntents, m.intents, func(x *Intent) *Intent { return x }),
		loadKind(t, sqlLogins, m.logins, func(x *LoginRequest) *LoginRequest { return x }),
		loadKind(t, sqlPairings, m.pairings, func(x *Pairing) *Pairing { return x }),
		loadKind(t, sqlRefresh, m.refresh, func(x *RefreshToken) *RefreshToken { return x }),
		loadKind(t, sqlChains, m.chains, func(x *TokenChain) *TokenChain { return x }),
		loadExpiring(t, "SELECT nonce, '', until FROM nonces", m.nonces),
		loadExpiring(t, "SELECT jti, '', until FROM revoked", m.revoked),
		loadExpiring(t, "SELECT jti, chain_id, until FROM chain_tokens", m.chainTokens),
	); err != nil {
		return err
	}
	rows, err := t.query("SELECT name, value FROM meta")
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return err
		}
		m.meta[name] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if m.events, err = getMany(t, sqlEvents, "1 = 1 ORDER BY id"); err != nil {
		return err
	}
	// event_seq holds the newest ID as of the last sweep that removed
	// events (see writeChanges); since then it is the newest event's.
	err = t.queryRow("SELECT MAX((SELECT last FROM event_seq), COALESCE((SELECT MAX(id) FROM events), 0))").Scan(&m.lastEvent)
	return err
}

// firstErr is the first error that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// loadKind puts every row of k's table into the memory table mt.
func loadKind[V, M any](t *sqlTx, k *kind[V], mt *memTable[M], conv func(*V) *M) error {
	rows, err := getMany(t, k, "1 = 1")
	if err != nil {
		return fmt.Errorf("%s: %w", k.table, err)
	}
	for _, r := range rows {
		v := conv(r)
		mt.set(mt.key(v), v)
	}
	return nil
}

func loadExpiring(t *sqlTx, query string, mt *memTable[expiring]) error {
	rows, err := t.query(query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e expiring
		var until int64
		if err := rows.Scan(&e.Key, &e.Group, &until); err != nil {
			return err
		}
		e.Until = fromNanos(until)
		mt.set(e.Key, &e)
	}
	return rows.Err()
}
