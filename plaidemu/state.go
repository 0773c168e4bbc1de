package plaidemu

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkd/linkd/internal/fileutil"
)

// stateVersion is the version of the state file's format; Start refuses
// any other but version 1 (one document holding every Item, still read).
//
// Version 2 is a sequence of JSON values, one a line: a header (stateFile
// without items), then one stateItem per change to an Item, a later record
// replacing an earlier one of the same access token. A change appends one
// record instead of rewriting every Item, so that an exchange costs the
// same with ten Items or a hundred thousand; the file is rewritten whole
// (atomically) at Open, and when superseded records outnumber the Items.
const stateVersion = 2

// stateFile is the emulator's durable state as stored at Options.StatePath:
// what a developer's Items need to keep working across restarts. Link
// tokens, public tokens and Link sessions are short-lived and stay in
// memory. The file holds access tokens; the emulator's tokens are fake and
// open nothing but its own sandbox data, but the file is written 0600 all
// the same, as linkd's master.key is.
type stateFile struct {
	Version    int      `json:"version"`
	WebhookKey stateKey `json:"webhook_key"`
	// Items is version 1's list; version 2 keeps them in records after
	// the header.
	Items []stateItem `json:"items,omitempty"`
}

// stateKey is the webhook signing key, so that webhooks signed before a
// restart still verify after it.
type stateKey struct {
	ID      string    `json:"kid"`
	PKCS8   []byte    `json:"pkcs8"` // base64 in JSON
	Created time.Time `json:"created_at"`
}

// stateItem is one Item, removed ones included so that their access tokens
// keep answering ITEM_NOT_FOUND rather than INVALID_ACCESS_TOKEN.
type stateItem struct {
	AccessToken   string    `json:"access_token"`
	ItemID        string    `json:"item_id"`
	InstitutionID string    `json:"institution_id"`
	AccountIDs    []string  `json:"account_ids"`
	Products      []string  `json:"products"`
	Webhook       string    `json:"webhook,omitempty"`
	Created       time.Time `json:"created_at"`
	Removed       bool      `json:"removed,omitempty"`
	LoginRequired bool      `json:"login_required,omitempty"`
	// ConsentExpires is consent_expiration_time; absent for none.
	ConsentExpires *time.Time `json:"consent_expiration_time,omitempty"`
	// AddedAccounts counts the accounts the bank opened since linking.
	AddedAccounts int `json:"added_accounts,omitempty"`
	// Verification is verification_status by account_id.
	Verification map[string]string `json:"verification_status,omitempty"`
}

func newStateItem(token string, it *item) stateItem {
	si := stateItem{
		AccessToken: token, ItemID: it.id, InstitutionID: it.institutionID,
		AccountIDs: it.accountIDs, Products: it.products, Webhook: it.webhook,
		Created: it.created.UTC(), Removed: it.removed, LoginRequired: it.loginRequired,
		AddedAccounts: it.addedAccounts, Verification: it.verification,
	}
	if !it.consentExpires.IsZero() {
		t := it.consentExpires.UTC()
		si.ConsentExpires = &t
	}
	return si
}

// stateLog is the open state file that Item records are appended to, and
// its background syncer. A change is written (write(2)) before it is
// answered, so that it survives the process being killed; the syncer makes
// it survive a power loss too, within stateSyncInterval, off the answer
// path: an fsync per answer cost more than the rest of the emulator's work.
type stateLog struct {
	// Under e.mu. f and info change only with syncing claimed too (or,
	// at Close, l.mu held), so the syncer reads them holding l.mu.
	f *os.File
	// info identifies the file f is, to notice when the path no longer
	// names it (moved or deleted).
	info os.FileInfo
	// size is f's length: a failed append is cut back to it.
	size int64
	// records counts the Item records in f.
	records int
	// rewrite makes the next change rewrite the file whole: an append
	// failed, or the file was closed.
	rewrite bool

	// dirty wakes the syncer after an append (buffered, never blocks);
	// stop ends it, and it closes stopped when it has.
	dirty, stop, stopped chan struct{}
	// syncFile syncs f: (*os.File).Sync, or a failure in a test.
	syncFile func(*os.File) error

	mu   sync.Mutex
	cond *sync.Cond // on mu: a sync or an install ended
	// written counts the bytes appended or installed since Open, synced
	// those known durable; both only grow, across rewrites of the file.
	written, synced int64
	// syncing is claimed by whoever syncs or replaces f, so that f is
	// never closed under a sync.
	syncing bool
	// err is the last background sync's failure, and moved is set when
	// the syncer found the path naming another file or none, until a
	// rewrite: either makes the next change rewrite the file whole.
	err   error
	moved bool
}

// stateSyncInterval is the least time between two background syncs of the
// state file: the longest a change waits to be safe from a power loss,
// with the syncer busy at most this often however many changes come.
const stateSyncInterval = 200 * time.Millisecond

// openStateLog returns an empty stateLog whose syncer runs until
// closeState. It cannot fail.
func (e *Emulator) openStateLog() *stateLog {
	l := &stateLog{
		dirty:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		syncFile: (*os.File).Sync,
	}
	l.cond = sync.NewCond(&l.mu)
	go e.runSyncer(l)
	return l
}

// runSyncer syncs l after appends, at most once per stateSyncInterval,
// until l.stop is closed.
func (e *Emulator) runSyncer(l *stateLog) {
	defer close(l.stopped)
	t := time.NewTimer(stateSyncInterval)
	t.Stop()
	for {
		select {
		case <-l.dirty:
		case <-l.stop:
			return
		}
		e.syncStateLog(l)
		t.Reset(stateSyncInterval)
		select {
		case <-t.C:
		case <-l.stop:
			return
		}
	}
}

// syncStateLog syncs what was appended to l since the last sync, and
// checks that the state path still names l's file. A failure is logged and
// kept in l.err, so that the next change rewrites the file from memory (and
// fails if that fails too). e.mu need not be held.
func (e *Emulator) syncStateLog(l *stateLog) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.syncing {
		l.cond.Wait()
	}
	if l.f == nil || l.err != nil || l.synced >= l.written {
		return
	}
	l.syncing = true
	upto, f, info := l.written, l.f, l.info
	l.mu.Unlock()
	// A file moved away keeps its links, so the append path does not see
	// it (see unlinked); this is the check that does.
	now, err := os.Stat(e.statePath)
	moved := err != nil || !os.SameFile(now, info)
	err = l.syncFile(f)
	l.mu.Lock()
	l.syncing = false
	l.moved = l.moved || moved
	if err != nil {
		l.err = fmt.Errorf("plaidemu: syncing the state file: %w", err)
		e.log.Error("plaidemu: saving the state", "path", e.statePath, "err", l.err)
	} else {
		l.synced = max(l.synced, upto)
	}
	l.cond.Broadcast()
}

// tornTail reports whether the state file f, from offset at (where a
// record failed to decode) to its end, is what a power loss leaves of the
// last records appended before the background sync reached them: at most
// one line once the zero bytes the filesystem may have filled them with
// are dropped. A damaged record with whole records after it is not one.
func tornTail(f *os.File, at int64) bool {
	rest, err := io.ReadAll(io.NewSectionReader(f, at, 1<<62))
	if err != nil {
		return false
	}
	rest = bytes.Trim(bytes.ReplaceAll(rest, []byte{0}, nil), " \t\r\n")
	return !bytes.Contains(rest, []byte{'\n'})
}

// loadState reads the state file at e.statePath into e, or keeps e's fresh
// state when the file does not exist. It returns an error naming the file
// when it cannot be read or does not hold a state the emulator wrote.
func (e *Emulator) loadState() error {
	f, err := os.Open(e.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("plaidemu: reading the state file: %w", err)
	}
	defer f.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("plaidemu: state file %s is damaged (%s); move it aside to start with no Items", e.statePath, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	var s stateFile
	if err := dec.Decode(&s); err != nil {
		return bad("%v", err)
	}
	records := s.Items
	switch s.Version {
	case 1:
		if _, err := dec.Token(); err != io.EOF {
			return bad("data after the state")
		}
	case stateVersion:
		if len(s.Items) > 0 {
			return bad("items in the header")
		}
		for {
			var si stateItem
			at := dec.InputOffset()
			err := dec.Decode(&si)
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				// The end, or a last record cut short by a crash while it
				// was appended: a change never acknowledged, since a
				// change is answered only once written whole (or, after
				// a power loss, one the syncer had not reached yet).
				break
			}
			if err != nil {
				if tornTail(f, at) {
					// What a power loss can leave of the last records,
					// which the background sync had not reached:
					// zero-filled or cut short. The file is rewritten
					// whole at Open.
					e.log.Warn("plaidemu: the state file ends in a damaged record, left by a power loss; starting without it", "path", e.statePath, "record", len(records)+1)
					break
				}
				return bad("record %d: %v", len(records)+1, err)
			}
			records = append(records, si)
		}
	default:
		return bad("version %d, want %d", s.Version, stateVersion)
	}
	key, err := x509.ParsePKCS8PrivateKey(s.WebhookKey.PKCS8)
	if err != nil {
		return bad("webhook_key: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve.Params().Name != "P-256" || s.WebhookKey.ID == "" {
		return bad("webhook_key is not a P-256 key with a kid")
	}
	items := make(map[string]*item, len(records))
	for i, si := range records {
		if si.AccessToken == "" || si.ItemID == "" {
			return bad("items[%d] has no access_token or item_id", i)
		}
		if _, dup := items[si.AccessToken]; dup && s.Version == 1 {
			return bad("items[%d] repeats an access_token", i)
		}
		if _, ok := institution(si.InstitutionID); !ok {
			return bad("items[%d] has unknown institution_id %q", i, si.InstitutionID)
		}
		items[si.AccessToken] = &item{
			accessToken:   si.AccessToken,
			id:            si.ItemID,
			institutionID: si.InstitutionID,
			accountIDs:    si.AccountIDs,
			products:      si.Products,
			webhook:       si.Webhook,
			created:       si.Created,
			removed:       si.Removed,
			loginRequired: si.LoginRequired,
			addedAccounts: si.AddedAccounts,
			verification:  si.Verification,
		}
		if si.AddedAccounts < 0 {
			return bad("items[%d] has negative added_accounts", i)
		}
		if si.ConsentExpires != nil {
			items[si.AccessToken].consentExpires = *si.ConsentExpires
		}
	}
	e.webhookKey = &webhookKey{id: s.WebhookKey.ID, private: ec, created: s.WebhookKey.Created}
	e.items = items
	return nil
}

// saveState writes e's whole durable state to e.statePath, replacing the
// file atomically, and opens it for the records of later changes, when the
// emulator has one. e.mu is held (or e is not shared yet). It returns an
// error when the file cannot be written; the old file is then left as it
// was, and the next change tries again.
func (e *Emulator) saveState() error {
	if e.statePath == "" {
		return nil
	}
	l := e.state
	// No sync may run on the file being replaced; everything it holds is
	// in the new one, synced before it is installed.
	l.mu.Lock()
	for l.syncing {
		l.cond.Wait()
	}
	l.syncing = true
	l.mu.Unlock()
	n, err := e.installState()
	l.mu.Lock()
	l.syncing = false
	if err == nil {
		l.written += n
		l.synced, l.err, l.moved = l.written, nil, false
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	l.rewrite = err != nil
	return err
}

// installState is saveState's writing: the file's bytes installed, or an
// error. l.syncing is claimed.
func (e *Emulator) installState() (int64, error) {
	der, err := x509.MarshalPKCS8PrivateKey(e.webhookKey.private)
	if err != nil {
		return 0, fmt.Errorf("plaidemu: encoding the webhook key: %w", err)
	}
	var buf bytes.Buffer
	err = json.NewEncoder(&buf).Encode(stateFile{
		Version:    stateVersion,
		WebhookKey: stateKey{ID: e.webhookKey.id, PKCS8: der, Created: e.webhookKey.created.UTC()},
	})
	if err != nil {
		return 0, fmt.Errorf("plaidemu: encoding the state: %w", err)
	}
	tokens := make([]string, 0, len(e.items))
	for token := range e.items {
		tokens = append(tokens, token)
	}
	slices.SortFunc(tokens, func(a, b string) int { return strings.Compare(e.items[a].id, e.items[b].id) })
	for _, token := range tokens {
		if err := appendRecord(&buf, token, e.items[token]); err != nil {
			return 0, err
		}
	}
	raw := buf.Bytes()
	if err := fileutil.Install(e.statePath, raw, os.Rename); err != nil {
		return 0, fmt.Errorf("plaidemu: writing the state file: %w", err)
	}
	f, err := os.OpenFile(e.statePath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, fmt.Errorf("plaidemu: opening the state file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("plaidemu: opening the state file: %w", err)
	}
	l := e.state
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.info, l.size, l.records = f, info, int64(len(raw)), len(tokens)
	return int64(len(raw)), nil
}

// appendRecord appends token's Item record, one line, to buf: the JSON
// encoding/json writes for its stateItem, written by hand when the values
// allow (appendStateItem), as encoding/json's reflection cost an exchange
// more than its write(2) did.
func appendRecord(buf *bytes.Buffer, token string, it *item) error {
	si := newStateItem(token, it)
	if b, ok := appendStateItem(buf.AvailableBuffer(), &si); ok {
		buf.Write(b)
		return nil
	}
	if err := json.NewEncoder(buf).Encode(si); err != nil {
		return fmt.Errorf("plaidemu: encoding the state: %w", err)
	}
	return nil
}

// appendStateItem appends si's JSON and a newline to b, byte for byte what
// encoding/json writes (TestAppendStateItem), and reports true; or false
// for a record it leaves to encoding/json: strings needing escapes,
// verification statuses, times outside years 0-9999.
func appendStateItem(b []byte, si *stateItem) ([]byte, bool) {
	ok := len(si.Verification) == 0 && plainTime(si.Created) && (si.ConsentExpires == nil || plainTime(*si.ConsentExpires))
	str := func(name, v string) {
		b = append(append(append(b, ",\""...), name...), "\":\""...)
		b = append(append(b, v...), '"')
		ok = ok && plainJSONString(v)
	}
	strs := func(name string, vs []string) {
		b = append(append(append(b, ",\""...), name...), "\":"...)
		if vs == nil {
			b = append(b, "null"...)
			return
		}
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), v...), '"')
			ok = ok && plainJSONString(v)
		}
		b = append(b, ']')
	}
	at := func(name string, t time.Time) {
		b = append(append(append(b, ",\""...), name...), "\":\""...)
		b = append(t.AppendFormat(b, time.RFC3339Nano), '"')
	}
	b = append(append(append(b, `{"access_token":"`...), si.AccessToken...), '"')
	ok = ok && plainJSONString(si.AccessToken)
	str("item_id", si.ItemID)
	str("institution_id", si.InstitutionID)
	strs("account_ids", si.AccountIDs)
	strs("products", si.Products)
	if si.Webhook != "" {
		str("webhook", si.Webhook)
	}
	at("created_at", si.Created)
	if si.Removed {
		b = append(b, `,"removed":true`...)
	}
	if si.LoginRequired {
		b = append(b, `,"login_required":true`...)
	}
	if si.ConsentExpires != nil {
		at("consent_expiration_time", *si.ConsentExpires)
	}
	if si.AddedAccounts != 0 {
		b = strconv.AppendInt(append(b, `,"added_accounts":`...), int64(si.AddedAccounts), 10)
	}
	return append(b, "}\n"...), ok
}

// plainJSONString reports whether encoding/json writes s as is between
// quotes: printable ASCII, none of the characters it escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// plainTime reports whether time.Time's MarshalJSON writes t as its
// RFC 3339 format (it refuses years outside 0-9999).
func plainTime(t time.Time) bool { return t.Year() >= 0 && t.Year() <= 9999 }

// appendState records the Item of token in the state file, rewriting the
// file whole instead when it must be (see stateLog.rewrite, err and moved;
// the path no longer names the open file; superseded records outnumber the
// Items). The record is written before it returns, and synced in the
// background. It returns an error with the file holding what it held
// before. e.mu is held.
func (e *Emulator) appendState(token string) error {
	l := e.state
	l.mu.Lock()
	stale := l.err != nil || l.moved
	l.mu.Unlock()
	if l.rewrite || stale || unlinked(l.f) || l.records-len(e.items) > len(e.items)+1024 {
		return e.saveState()
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if err := appendRecord(buf, token, e.items[token]); err != nil {
		return err
	}
	rec := buf.Bytes()
	if n, err := l.f.Write(rec); err != nil {
		// A torn record would make the next ones unreadable.
		if n > 0 && l.f.Truncate(l.size) != nil {
			l.rewrite = true
		}
		return fmt.Errorf("plaidemu: writing the state file: %w", err)
	}
	l.size += int64(len(rec))
	l.records++
	l.mu.Lock()
	l.written += int64(len(rec))
	l.mu.Unlock()
	select {
	case l.dirty <- struct{}{}:
	default: // the syncer has been told already
	}
	return nil
}

// closeState stops the syncer, syncs the state file and closes it. It can
// be called again. e.mu is held.
func (e *Emulator) closeState() {
	l := e.state
	if l == nil {
		return
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.stopped // it never takes e.mu
	if l.f == nil {
		return
	}
	l.mu.Lock()
	for l.syncing {
		l.cond.Wait()
	}
	if err := l.syncFile(l.f); err != nil {
		l.err = fmt.Errorf("plaidemu: syncing the state file: %w", err)
		e.log.Error("plaidemu: saving the state", "path", e.statePath, "err", l.err)
	} else {
		l.synced = l.written
	}
	l.f.Close()
	l.f = nil
	// A change after Close (a request in flight) rewrites a new file,
	// synced whole; with the syncer stopped, later ones are written
	// unsynced until the next Close.
	l.rewrite = true
	l.mu.Unlock()
}

// commitItems saves the state after a change to the Item of accessToken,
// for the endpoints: nil when saved (or nothing to save), else an
// API_ERROR, logged in full. The caller undoes its change on failure, so
// that memory and file agree. e.mu is held. Saved means written to the
// file, which a killed process leaves behind; the background syncer makes
// it durable against a power loss within stateSyncInterval.
func (e *Emulator) commitItems(accessToken string) *Error {
	if e.statePath == "" {
		return nil
	}
	if err := e.appendState(accessToken); err != nil {
		e.log.Error("plaidemu: saving the state", "path", e.statePath, "err", err)
		return errStateNotSaved()
	}
	return nil
}

func errStateNotSaved() *Error {
	return plaidErr(TypeAPIError, "INTERNAL_SERVER_ERROR", "the emulator could not save its state file")
}
