package clickhouse

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Cluster lays the schema out on a ClickHouse cluster (a remote_servers
// entry of the servers' config, with ZooKeeper for replication):
//
//   - every *MergeTree table T becomes T_local, created ON CLUSTER with the
//     Replicated engine of its family, and T becomes a Distributed table
//     over T_local, so the processor and every query keep using T;
//   - a Distributed table's sharding key is the visitor,
//     cityHash64(site, anonymous_id), for the tables in VisitorSharded and
//     every table whose sorting key holds anonymous_id; any other table is
//     sharded by its own sorting key. Copies of one row (same key) then
//     always meet on one shard, where ReplacingMergeTree collapses them;
//   - materialized views read and write the local tables (each shard
//     aggregates its own rows); a view with an inner engine becomes
//     V_local plus a Distributed V;
//   - views, other engines, ALTER, DROP, OPTIMIZE and TRUNCATE run ON
//     CLUSTER, against the local tables (a column change also makes the
//     Distributed table again over the altered one); RENAME renames the
//     local tables and makes the Distributed ones again over them;
//   - INSERT runs as written, through the Distributed tables.
//
// The transformation parses each statement's kind, table, columns and
// engine, so migrations added later are covered without changes here.
type Cluster struct {
	// Name is the cluster's name in the servers' remote_servers.
	Name string
	// Database is the database the migrations run in.
	Database string
	// ReplicaPath is the ZooKeeper path of a replicated table;
	// {database} and {table} are filled in here (ClickHouse 18.16 has no
	// such macros), other macros ({shard}) by each server. The default is
	// DefaultReplicaPath.
	ReplicaPath string
	// ReplicaName is the replica's name in that path, usually a server
	// macro; the default is "{replica}".
	ReplicaName string
}

// DefaultReplicaPath is the default Cluster.ReplicaPath.
const DefaultReplicaPath = "/clickhouse/tables/{shard}/{database}/{table}"

// LocalSuffix names a Distributed table's local table.
const LocalSuffix = "_local"

// VisitorSharded are the tables sharded by visitor although their sorting
// key does not name the visitor: a row's key (message id, session id)
// fixes its visitor, so copies of a row still meet on one shard. A table
// named after one of them with a suffix (events_v2, made to replace
// events; sessions_by_start, filled from sessions) is sharded the same way
// when it has their site and anonymous_id columns.
var VisitorSharded = []string{"events", "sessions"}

const visitorShardKey = "cityHash64(site, anonymous_id)"

func (c Cluster) withDefaults() (Cluster, error) {
	if c.ReplicaPath == "" {
		c.ReplicaPath = DefaultReplicaPath
	}
	if c.ReplicaName == "" {
		c.ReplicaName = "{replica}"
	}
	if !dbName.MatchString(c.Name) {
		return c, fmt.Errorf("cluster name %q is not a plain identifier", c.Name)
	}
	if !dbName.MatchString(c.Database) {
		return c, fmt.Errorf("database %q is not a plain identifier", c.Database)
	}
	if strings.ContainsAny(c.ReplicaPath+c.ReplicaName, `'\`) {
		return c, errors.New("cluster replica path and name must not contain quotes or backslashes")
	}
	return c, nil
}

// CreateDatabase is the statement that creates the database on every node.
func (c Cluster) CreateDatabase() string {
	return fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s ON CLUSTER %s", c.Database, c.Name)
}

// schemaMigrations creates schema_migrations replicated over every node of
// the cluster (one ZooKeeper path for all shards): whichever node the next
// migrate run connects to knows what was applied.
func (c Cluster) schemaMigrations() string {
	path := "/clickhouse/shoptrail/" + c.Name + "/" + c.Database + "/schema_migrations"
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations ON CLUSTER %s
(
    version    UInt32,
    name       String,
    applied_at DateTime
)
ENGINE = ReplicatedReplacingMergeTree('%s', '%s', applied_at)
ORDER BY version`, c.Database, c.Name, path, c.ReplicaName)
}

// ForCluster returns the migrations with every statement transformed for
// the cluster (a statement may become several). A statement it cannot
// place on a cluster is an error naming the migration.
func ForCluster(ms []Migration, c Cluster) ([]Migration, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &transformer{c: c, local: map[string]bool{}, keys: map[string]string{}}
	out := make([]Migration, 0, len(ms))
	for _, m := range ms {
		cm := Migration{Version: m.Version, Name: m.Name}
		for i, s := range m.Statements {
			stmts, err := t.statement(s)
			if err != nil {
				return nil, fmt.Errorf("migration %04d_%s statement %d on cluster %s: %w", m.Version, m.Name, i+1, c.Name, err)
			}
			cm.Statements = append(cm.Statements, stmts...)
		}
		out = append(out, cm)
	}
	return out, nil
}

// transformer carries what earlier statements created: the tables that
// have a _local table behind a Distributed one.
type transformer struct {
	c     Cluster
	local map[string]bool
	keys  map[string]string // sharding key of each Distributed table
}

func (t *transformer) q(name string) string { return t.c.Database + "." + name }
func (t *transformer) onCluster() string    { return " ON CLUSTER " + t.c.Name }
func (t *transformer) replicaPath(tbl string) string {
	return strings.NewReplacer("{database}", t.c.Database, "{table}", tbl).Replace(t.c.ReplicaPath)
}

func (t *transformer) statement(s string) ([]string, error) {
	toks := lex(s)
	p := newParser(toks)
	switch {
	case p.words("CREATE", "TABLE"), p.words("CREATE", "OR", "REPLACE", "TABLE"):
		return t.createTable(p)
	case p.words("CREATE", "MATERIALIZED", "VIEW"):
		return t.createMaterializedView(p)
	case p.words("CREATE", "VIEW"), p.words("CREATE", "OR", "REPLACE", "VIEW"),
		p.words("CREATE", "DICTIONARY"), p.words("CREATE", "OR", "REPLACE", "DICTIONARY"):
		return t.createOther(p)
	case p.words("ALTER", "TABLE"):
		return t.alter(p)
	case p.words("DROP", "TABLE"), p.words("DROP", "VIEW"), p.words("DROP", "DICTIONARY"):
		return t.drop(p)
	case p.words("OPTIMIZE", "TABLE"), p.words("TRUNCATE", "TABLE"):
		return t.onLocal(p)
	case p.words("RENAME", "TABLE"):
		return t.rename(p)
	case p.words("INSERT", "INTO"):
		// Through the Distributed table, like the processor's inserts.
		return []string{s}, nil
	}
	return nil, fmt.Errorf("cannot run %q on a cluster: only CREATE, ALTER, DROP, OPTIMIZE, TRUNCATE and INSERT are known", firstWords(toks, 3))
}

// createTable handles CREATE TABLE [IF NOT EXISTS] name (columns) ENGINE =
// engine[(args)] rest, and CREATE TABLE name AS other [ENGINE ...].
func (t *transformer) createTable(p *parser) ([]string, error) {
	p.skipWords("CREATE")
	p.skipWords("OR", "REPLACE")
	p.skipWords("TABLE")
	p.skipWords("IF", "NOT", "EXISTS")
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.words("ON", "CLUSTER") {
		return nil, fmt.Errorf("table %s already says ON CLUSTER: migrations are written for one server", name)
	}
	var columns string
	var colNames []string
	switch {
	case p.punct("("):
		start := p.i
		end, err := p.skipGroup()
		if err != nil {
			return nil, err
		}
		columns = text(p.toks[start:end])
		colNames = columnNames(p.toks[start+1 : end-1])
	case p.words("AS"):
		p.next()
		other, err := p.tableName()
		if err != nil {
			return nil, err
		}
		if t.local[other] {
			other += LocalSuffix
		}
		columns = "AS " + t.q(other)
	default:
		return nil, fmt.Errorf("table %s: want a column list or AS another table", name)
	}
	if !p.skipWords("ENGINE") {
		return nil, fmt.Errorf("table %s has no ENGINE", name)
	}
	if p.punct("=") {
		p.next()
	}
	engine, args, rest, err := p.engine()
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	if hasWordAtTop(rest, "SELECT") {
		return nil, fmt.Errorf("table %s: CREATE TABLE ... AS SELECT cannot run on a cluster; create the table, then INSERT ... SELECT", name)
	}
	if strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("table %s already has a replicated engine %s", name, engine)
	}
	if !strings.HasSuffix(engine, "MergeTree") {
		// Memory, Log, Null, Set, Join, ...: one per node.
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s %s\nENGINE = %s%s%s",
			t.q(name), t.onCluster(), columns, engine, args, text(rest))}, nil
	}
	local := name + LocalSuffix
	repArgs := fmt.Sprintf("'%s', '%s'", t.replicaPath(local), t.c.ReplicaName)
	if inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(args, "("), ")")); inner != "" {
		repArgs += ", " + inner
	}
	key, err := t.shardKey(name, colNames, rest)
	if err != nil {
		return nil, err
	}
	t.local[name] = true
	t.keys[name] = key
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s %s\nENGINE = Replicated%s(%s)%s",
			t.q(local), t.onCluster(), columns, engine, repArgs, text(rest)),
		t.distributed(name),
	}, nil
}

// distributed creates the Distributed table name over name_local.
func (t *transformer) distributed(name string) string {
	local := name + LocalSuffix
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, %s)",
		t.q(name), t.onCluster(), t.q(local), t.c.Name, t.c.Database, local, t.keys[name])
}

// rename handles RENAME TABLE a TO b[, c TO d ...]: the local tables are
// renamed in one statement (a swap stays a swap), and the Distributed
// tables, which name their local table, are dropped and created again
// over the renamed ones with the same sharding keys.
func (t *transformer) rename(p *parser) ([]string, error) {
	p.skipWords("RENAME", "TABLE")
	type pair struct{ from, to string }
	var pairs []pair
	for {
		from, err := p.tableName()
		if err != nil {
			return nil, err
		}
		if !p.skipWords("TO") {
			return nil, fmt.Errorf("RENAME TABLE %s: want TO", from)
		}
		to, err := p.tableName()
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{from, to})
		if !p.punct(",") {
			break
		}
		p.next()
	}
	if p.i < len(p.toks) {
		return nil, fmt.Errorf("RENAME TABLE: unexpected %q (ON CLUSTER is added here)", text(p.toks[p.i:]))
	}
	var locals, others []string
	var drops, creates []string
	local, keys := map[string]bool{}, map[string]string{}
	for k, v := range t.local {
		local[k] = v
	}
	for k, v := range t.keys {
		keys[k] = v
	}
	for _, pr := range pairs {
		if !t.local[pr.from] {
			others = append(others, t.q(pr.from)+" TO "+t.q(pr.to))
			continue
		}
		locals = append(locals, t.q(pr.from+LocalSuffix)+" TO "+t.q(pr.to+LocalSuffix))
		drops = append(drops, fmt.Sprintf("DROP TABLE IF EXISTS %s%s", t.q(pr.from), t.onCluster()))
		delete(local, pr.from)
	}
	for _, pr := range pairs {
		if t.local[pr.from] {
			local[pr.to] = true
			keys[pr.to] = t.keys[pr.from]
		}
	}
	t.local, t.keys = local, keys
	for _, pr := range pairs {
		if t.local[pr.to] && slices.ContainsFunc(locals, func(s string) bool { return strings.HasSuffix(s, " TO "+t.q(pr.to+LocalSuffix)) }) {
			creates = append(creates, t.distributed(pr.to))
		}
	}
	var out []string
	if len(locals) > 0 {
		out = append(out, "RENAME TABLE "+strings.Join(locals, ", ")+t.onCluster())
	}
	if len(others) > 0 {
		out = append(out, "RENAME TABLE "+strings.Join(others, ", ")+t.onCluster())
	}
	out = append(out, drops...)
	return append(out, creates...), nil
}

// shardKey picks the Distributed sharding key of a table (see Cluster).
func (t *transformer) shardKey(name string, cols []string, rest []token) (string, error) {
	orderBy := sortingKey(rest)
	keyCols := identifiers(orderBy)
	named := slices.Contains(VisitorSharded, name)
	visitor := named || slices.Contains(keyCols, "anonymous_id") ||
		slices.ContainsFunc(VisitorSharded, func(v string) bool { return strings.HasPrefix(name, v+"_") })
	if visitor && slices.Contains(cols, "anonymous_id") && slices.Contains(cols, "site") {
		return visitorShardKey, nil
	}
	if named && len(cols) > 0 {
		return "", fmt.Errorf("table %s is sharded by visitor but lacks site or anonymous_id", name)
	}
	// A table named like one of them without the visitor's columns (an
	// aggregate, say) is sharded by its key.
	expr := strings.TrimSpace(text(orderBy))
	if expr == "" {
		return "", fmt.Errorf("table %s has no ORDER BY to shard by", name)
	}
	if inner, ok := strings.CutPrefix(expr, "("); ok && strings.HasSuffix(inner, ")") && balanced(inner[:len(inner)-1]) {
		expr = strings.TrimSuffix(inner, ")")
	}
	if expr == "tuple()" || strings.TrimSpace(expr) == "" {
		return "rand()", nil // no key: nothing to collapse, spread evenly
	}
	return "cityHash64(" + expr + ")", nil
}

// createMaterializedView handles CREATE MATERIALIZED VIEW [IF NOT EXISTS]
// name [TO target] [ENGINE = ...] [POPULATE] AS SELECT ...: the view reads
// the local tables and writes the local target.
func (t *transformer) createMaterializedView(p *parser) ([]string, error) {
	p.skipWords("CREATE", "MATERIALIZED", "VIEW")
	p.skipWords("IF", "NOT", "EXISTS")
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.words("ON", "CLUSTER") {
		return nil, fmt.Errorf("view %s already says ON CLUSTER", name)
	}
	asAt := p.findTop("AS")
	if asAt < 0 {
		return nil, fmt.Errorf("materialized view %s has no AS SELECT", name)
	}
	head := p.toks[p.i:asAt]
	query := t.localRefs(p.toks[asAt:])
	hp := newParser(head)
	if hp.skipWords("TO") {
		target, err := hp.tableName()
		if err != nil {
			return nil, err
		}
		if t.local[target] {
			target += LocalSuffix
		}
		return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s%s %s",
			t.q(name), t.onCluster(), t.q(target), text(hp.toks[hp.i:]), query)}, nil
	}
	if !hp.skipWords("ENGINE") {
		return nil, fmt.Errorf("materialized view %s has neither TO nor ENGINE", name)
	}
	if hp.punct("=") {
		hp.next()
	}
	engine, args, rest, err := hp.engine()
	if err != nil {
		return nil, fmt.Errorf("materialized view %s: %w", name, err)
	}
	if !strings.HasSuffix(engine, "MergeTree") || strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("materialized view %s: engine %s cannot be replicated", name, engine)
	}
	local := name + LocalSuffix
	repArgs := fmt.Sprintf("'%s', '%s'", t.replicaPath(local), t.c.ReplicaName)
	if inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(args, "("), ")")); inner != "" {
		repArgs += ", " + inner
	}
	key := "cityHash64(" + strings.Trim(strings.TrimSpace(text(sortingKey(rest))), "()") + ")"
	if key == "cityHash64()" {
		key = "rand()"
	}
	t.local[name] = true
	t.keys[name] = key
	return []string{
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s\nENGINE = Replicated%s(%s)%s %s",
			t.q(local), t.onCluster(), engine, repArgs, text(rest), query),
		t.distributed(name),
	}, nil
}

// createOther adds ON CLUSTER to a view or dictionary; its queries read the
// Distributed tables, so they see every shard.
func (t *transformer) createOther(p *parser) ([]string, error) {
	for p.i < len(p.toks) && !p.isWord("VIEW") && !p.isWord("DICTIONARY") {
		p.next()
	}
	p.next()
	p.skipWords("IF", "NOT", "EXISTS")
	at := p.i
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.words("ON", "CLUSTER") {
		return nil, fmt.Errorf("%s already says ON CLUSTER", name)
	}
	return []string{text(p.toks[:at]) + t.q(name) + t.onCluster() + " " + text(p.toks[p.i:])}, nil
}

// alter runs an ALTER on the local table; after a column change the
// Distributed table, whose columns must match, is made again.
func (t *transformer) alter(p *parser) ([]string, error) {
	p.skipWords("ALTER", "TABLE")
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.words("ON", "CLUSTER") {
		return nil, fmt.Errorf("ALTER of %s already says ON CLUSTER", name)
	}
	rest := " " + text(p.toks[p.i:])
	if !t.local[name] {
		return []string{"ALTER TABLE " + t.q(name) + t.onCluster() + rest}, nil
	}
	out := []string{"ALTER TABLE " + t.q(name+LocalSuffix) + t.onCluster() + rest}
	if hasWordAtTop(p.toks[p.i:], "COLUMN") {
		// ClickHouse refuses an ALTER ON CLUSTER of a Distributed table
		// whose shards replicate internally: make it again over the
		// altered local table instead (it holds no data).
		out = append(out, "DROP TABLE IF EXISTS "+t.q(name)+t.onCluster(), t.distributed(name))
	}
	return out, nil
}

// drop drops a table everywhere, and its local table.
func (t *transformer) drop(p *parser) ([]string, error) {
	p.next() // DROP
	kind := strings.ToUpper(p.toks[p.i].text)
	p.next()
	ifExists := ""
	if p.skipWords("IF", "EXISTS") {
		ifExists = "IF EXISTS "
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	out := []string{fmt.Sprintf("DROP %s %s%s%s", kind, ifExists, t.q(name), t.onCluster())}
	if t.local[name] {
		out = append(out, fmt.Sprintf("DROP %s %s%s%s", kind, ifExists, t.q(name+LocalSuffix), t.onCluster()))
		delete(t.local, name)
		delete(t.keys, name)
	}
	return out, nil
}

// onLocal runs OPTIMIZE or TRUNCATE on every node's local table.
func (t *transformer) onLocal(p *parser) ([]string, error) {
	verb := strings.ToUpper(p.toks[p.i].text)
	p.next()
	p.next()
	ifExists := ""
	if p.skipWords("IF", "EXISTS") {
		ifExists = "IF EXISTS "
	}
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if t.local[name] {
		name += LocalSuffix
	}
	return []string{fmt.Sprintf("%s TABLE %s%s%s %s", verb, ifExists, t.q(name), t.onCluster(), text(p.toks[p.i:]))}, nil
}

// localRefs rewrites the tables after FROM and JOIN that have a local
// table to that local table.
func (t *transformer) localRefs(toks []token) string {
	var b strings.Builder
	after := false // the previous word was FROM or JOIN
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		if tk.kind == tkSpace || tk.kind == tkComment {
			b.WriteString(tk.text)
			continue
		}
		if after && (tk.kind == tkIdent || tk.kind == tkQuoted) {
			// db.table or table
			name := tk.name()
			j := i
			if i+2 < len(toks) && toks[i+1].text == "." && (toks[i+2].kind == tkIdent || toks[i+2].kind == tkQuoted) {
				name = toks[i+2].name()
				j = i + 2
			}
			if t.local[name] {
				b.WriteString(t.q(name + LocalSuffix))
				i = j
				after = false
				continue
			}
		}
		after = tk.kind == tkIdent && (strings.EqualFold(tk.text, "FROM") || strings.EqualFold(tk.text, "JOIN"))
		b.WriteString(tk.text)
	}
	return b.String()
}

// sortingKey returns the tokens of ORDER BY's expression in a table's
// clauses (up to the next clause).
func sortingKey(rest []token) []token {
	p := newParser(rest)
	at := -1
	for p.i < len(p.toks) {
		if p.words("ORDER", "BY") {
			p.skipWords("ORDER", "BY")
			at = p.i
			break
		}
		if p.punct("(") {
			if _, err := p.skipGroup(); err != nil {
				return nil
			}
			continue
		}
		p.next()
	}
	if at < 0 {
		return nil
	}
	for p.i < len(p.toks) {
		if p.punct("(") {
			if _, err := p.skipGroup(); err != nil {
				return nil
			}
			continue
		}
		if p.isWord("PARTITION") || p.isWord("PRIMARY") || p.isWord("SAMPLE") || p.isWord("TTL") || p.isWord("SETTINGS") {
			break
		}
		p.next()
	}
	return p.toks[at:p.i]
}

// columnNames returns the column names of a column list's inside.
func columnNames(toks []token) []string {
	var names []string
	depth, first := 0, true
	for _, tk := range toks {
		switch {
		case tk.kind == tkSpace || tk.kind == tkComment:
			continue
		case tk.text == "(":
			depth++
		case tk.text == ")":
			depth--
		case tk.text == "," && depth == 0:
			first = true
			continue
		case first && (tk.kind == tkIdent || tk.kind == tkQuoted):
			switch strings.ToUpper(tk.text) {
			case "INDEX", "CONSTRAINT", "PROJECTION":
			default:
				names = append(names, tk.name())
			}
		}
		first = false
	}
	return names
}

// identifiers returns the plain identifiers among toks.
func identifiers(toks []token) []string {
	var ids []string
	for _, tk := range toks {
		if tk.kind == tkIdent || tk.kind == tkQuoted {
			ids = append(ids, tk.name())
		}
	}
	return ids
}

func hasWordAtTop(toks []token, w string) bool {
	depth := 0
	for _, tk := range toks {
		switch {
		case tk.text == "(":
			depth++
		case tk.text == ")":
			depth--
		case depth == 0 && tk.kind == tkIdent && strings.EqualFold(tk.text, w):
			return true
		}
	}
	return false
}

func balanced(s string) bool {
	depth := 0
	for _, tk := range lex(s) {
		switch tk.text {
		case "(":
			depth++
		case ")":
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

func firstWords(toks []token, n int) string {
	var ws []string
	for _, tk := range toks {
		if tk.kind != tkSpace && tk.kind != tkComment {
			ws = append(ws, tk.text)
			if len(ws) == n {
				break
			}
		}
	}
	return strings.Join(ws, " ")
}

// text joins tokens back into SQL as they were written.
func text(toks []token) string {
	var b strings.Builder
	for _, tk := range toks {
		b.WriteString(tk.text)
	}
	return b.String()
}
