//! The store's database layer: one SQLite connection or one PostgreSQL
//! client behind the same small API, so every query of the store is written
//! once.
//!
//! The API mirrors the part of rusqlite the store uses (`execute`,
//! `query_row`, `prepare` + `query_and_then`, `transaction_with_behavior`)
//! over an owned [`Value`]/[`Row`] type. SQL is written in the subset both
//! engines share: `?N` (or `?`) placeholders, rewritten to `$N` for
//! PostgreSQL; `ON CONFLICT ... DO NOTHING`; `RETURNING`; integers as
//! 64-bit. Where the engines differ (JSON functions, catalog queries), the
//! caller asks [`Connection::dialect`] and writes both forms.
//!
//! Writes: [`Connection::transaction_with_behavior`] with
//! [`TransactionBehavior::Immediate`] is SQLite's `BEGIN IMMEDIATE` (the one
//! writer lock) and, on PostgreSQL, `BEGIN` + `pg_advisory_xact_lock` on a
//! store-wide key, so writers serialise the same way on both. A write outside
//! a transaction runs in one such transaction of its own.
//!
//! Fencing: a connection may carry a leadership epoch ([`Connection::set_epoch`]).
//! Every write transaction then first checks, inside the transaction and under
//! the writer lock, that no newer epoch exists in the `leadership` table — on
//! PostgreSQL through the database function `ringmaster_fence`, which locks the
//! leadership row (`FOR SHARE`) and raises; a statement trigger on every state
//! table calls it too, with the epoch the session declared
//! (`ringmaster.epoch`), so even a write that bypasses this layer is refused.
//! A refused write is [`StoreError::Fenced`].
//!
//! The PostgreSQL client is the synchronous `postgres` crate. Each call runs
//! through [`blocking`]: on a multi-threaded tokio runtime's worker it is
//! wrapped in `block_in_place`, elsewhere it runs directly.

use super::StoreError;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The advisory-lock key writers take on PostgreSQL ("ringmast" in ASCII).
pub(super) const WRITER_LOCK_KEY: i64 = 0x7269_6e67_6d61_7374;
/// The advisory-lock key migrations take on PostgreSQL.
pub(super) const MIGRATION_LOCK_KEY: i64 = WRITER_LOCK_KEY + 1;

/// Which SQL engine a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value sent to or read from the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value the store binds as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for u8 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(value) => value.to_value(),
            None => Value::Null,
        }
    }
}

/// Parameters of a statement.
pub trait Params {
    fn into_values(self) -> Vec<Value>;
}

impl Params for &[Value] {
    fn into_values(self) -> Vec<Value> {
        self.to_vec()
    }
}
impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl<T: ToValue, const N: usize> Params for &[T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// `params![a, b, c]`: a parameter list of mixed types.
macro_rules! params {
    () => {
        &[] as &[$crate::store::db::Value]
    };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::store::db::ToValue::to_value(&$value)),+] as &[$crate::store::db::Value]
    };
}
pub(crate) use params;

/// Parameters from an iterator of values.
pub fn params_from_iter(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    values.into_iter().collect()
}

/// A Rust value a column decodes to.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}
impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Integer(number) => Some(*number),
            _ => None,
        }
    }
}
impl FromValue for u64 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|number| u64::try_from(number).ok())
    }
}
impl FromValue for u32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|number| u32::try_from(number).ok())
    }
}
impl FromValue for u8 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|number| u8::try_from(number).ok())
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|number| number != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(number) => Some(*number),
            Value::Integer(number) => Some(*number as f64),
            // PostgreSQL's `json_extract` (see `postgres_schema`) returns text.
            Value::Text(text) => text.parse().ok(),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(bytes) => Some(bytes.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A column by position or by name.
pub trait RowIndex {
    fn position(&self, columns: &[String]) -> Option<usize>;
    fn describe(&self) -> String;
}
impl RowIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        format!("column {self}")
    }
}
impl RowIndex for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|column| column == self)
    }
    fn describe(&self) -> String {
        format!("column {self:?}")
    }
}

/// One row of a result, owned.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    columns: Arc<[String]>,
    values: Vec<Value>,
    _rows: std::marker::PhantomData<&'a ()>,
}

impl Row<'_> {
    /// The column at `index` as a `T`.
    pub fn get<I: RowIndex, T: FromValue>(&self, index: I) -> Result<T, StoreError> {
        let position = index
            .position(&self.columns)
            .ok_or_else(|| StoreError::Decode {
                column: index.describe(),
                detail: "no such column".to_string(),
            })?;
        let value = &self.values[position];
        T::from_value(value).ok_or_else(|| StoreError::Decode {
            column: self.columns[position].clone(),
            detail: format!("holds {value:?}, not a {}", std::any::type_name::<T>()),
        })
    }
}

/// A result set, read with `next()`.
pub struct Rows<'a> {
    rows: std::vec::IntoIter<Row<'a>>,
    current: Option<Row<'a>>,
}

impl<'a> Rows<'a> {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<&Row<'a>>, StoreError> {
        self.current = self.rows.next();
        Ok(self.current.as_ref())
    }
}

/// A statement: its SQL, run with parameters (the PostgreSQL backend caches
/// the prepared statement by its text).
pub struct Statement<'c> {
    connection: &'c Connection,
    sql: String,
}

impl<'c> Statement<'c> {
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'static>, StoreError> {
        let rows = self.connection.fetch(&self.sql, params.into_values())?;
        Ok(Rows {
            rows: rows.into_iter(),
            current: None,
        })
    }

    pub fn query_and_then<P: Params, T>(
        &mut self,
        params: P,
        mut map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<std::vec::IntoIter<Result<T, StoreError>>, StoreError> {
        let rows = self.connection.fetch(&self.sql, params.into_values())?;
        Ok(rows.iter().map(&mut map).collect::<Vec<_>>().into_iter())
    }

    pub fn query_map<P: Params, T>(
        &mut self,
        params: P,
        map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<std::vec::IntoIter<Result<T, StoreError>>, StoreError> {
        self.query_and_then(params, map)
    }

    pub fn query_row<P: Params, T>(
        &mut self,
        params: P,
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.connection.query_row(&self.sql, params, map)
    }
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    /// A read snapshot.
    Deferred,
    /// The writer lock, and the fencing check.
    Immediate,
    /// The writer lock without the fencing check (taking the lead).
    Unfenced,
}

// One connection per store: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: RefCell<postgres::Client>,
        statements: RefCell<HashMap<String, postgres::Statement>>,
    },
}

/// One database connection of either engine.
pub struct Connection {
    backend: Backend,
    in_transaction: Cell<bool>,
    /// The leadership epoch this connection writes under, if any.
    epoch: Cell<Option<i64>>,
    /// An open write batch ([`Connection::begin_batch`]), if any.
    batch: Cell<Option<Batch>>,
}

/// A write batch: one outer write transaction in which every
/// transaction of the store's methods is a savepoint, so many of them
/// share one commit (one fsync). Bounded: it commits and begins again
/// after [`BATCH_MAX_WRITES`] writes or [`BATCH_MAX_OPEN`].
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// Transactions released into it since it began.
    writes: usize,
    began: std::time::Instant,
}

/// Most store transactions one batch commit carries.
pub const BATCH_MAX_WRITES: usize = 2_000;

/// Longest a batch stays open before it commits (it holds the writer
/// lock: other writers, a standby's webhook deliveries or the lease
/// renewal, wait for it).
pub const BATCH_MAX_OPEN: std::time::Duration = std::time::Duration::from_millis(500);

impl fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("dialect", &self.dialect())
            .field("epoch", &self.epoch.get())
            .finish_non_exhaustive()
    }
}

/// Runs a blocking database call: inside `block_in_place` on a
/// multi-threaded tokio worker (where the synchronous PostgreSQL client
/// would otherwise refuse to start its own runtime), directly elsewhere.
pub(super) fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

impl Connection {
    pub(super) fn sqlite(connection: rusqlite::Connection) -> Connection {
        Connection {
            backend: Backend::Sqlite(connection),
            in_transaction: Cell::new(false),
            epoch: Cell::new(None),
            batch: Cell::new(None),
        }
    }

    pub(super) fn postgres(client: postgres::Client) -> Connection {
        Connection {
            backend: Backend::Postgres {
                client: RefCell::new(client),
                statements: RefCell::new(HashMap::new()),
            },
            in_transaction: Cell::new(false),
            epoch: Cell::new(None),
            batch: Cell::new(None),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas).
    pub(super) fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(connection) => Some(connection),
            Backend::Postgres { .. } => None,
        }
    }

    pub(super) fn as_sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.backend {
            Backend::Sqlite(connection) => Some(connection),
            Backend::Postgres { .. } => None,
        }
    }

    /// Whether the connection can serve another caller: not inside a
    /// transaction, and (PostgreSQL) its session still open.
    pub(super) fn is_usable(&self) -> bool {
        if self.in_transaction.get() || self.batch.get().is_some() {
            return false;
        }
        match &self.backend {
            Backend::Sqlite(_) => true,
            Backend::Postgres { client, .. } => client
                .try_borrow()
                .map(|client| !client.is_closed())
                .unwrap_or(false),
        }
    }

    /// The epoch this connection writes under.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch.get()
    }

    /// Declares the epoch this connection writes under (`None`: unfenced).
    /// On PostgreSQL the session setting `ringmaster.epoch` carries it to
    /// the fencing triggers.
    pub(super) fn set_epoch(&self, epoch: Option<i64>) -> Result<(), StoreError> {
        if let Backend::Postgres { client, .. } = &self.backend {
            let text = epoch.map(|epoch| epoch.to_string()).unwrap_or_default();
            blocking(|| {
                client
                    .borrow_mut()
                    .execute("SELECT set_config('ringmaster.epoch', $1, false)", &[&text])
            })
            .map_err(StoreError::from_postgres)?;
        }
        self.epoch.set(epoch);
        Ok(())
    }

    /// Runs statements without parameters (DDL).
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => Ok(connection.execute_batch(sql)?),
            Backend::Postgres { client, .. } => blocking(|| client.borrow_mut().batch_execute(sql))
                .map_err(StoreError::from_postgres),
        }
    }

    /// Runs one statement; how many rows it changed. Outside a transaction
    /// it runs in a write transaction of its own (writer lock, fencing).
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, StoreError> {
        let values = params.into_values();
        if !self.in_transaction.get() {
            let transaction = self.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = transaction.execute_now(sql, values)?;
            transaction.commit()?;
            return Ok(changed);
        }
        self.execute_now(sql, values)
    }

    fn execute_now(&self, sql: &str, values: Vec<Value>) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(sql)?;
                Ok(
                    statement
                        .execute(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?,
                )
            }
            Backend::Postgres { .. } => {
                let changed = self.postgres_call(sql, &values, |client, statement, params| {
                    client.execute(statement, params)
                })?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// The first row of a query through `map`; [`StoreError::NoRows`] when
    /// there is none.
    pub fn query_row<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let rows = self.fetch(sql, params.into_values())?;
        match rows.first() {
            Some(row) => map(row),
            None => Err(StoreError::NoRows),
        }
    }

    /// Same as [`Connection::query_row`] (rusqlite's name for it).
    pub fn query_row_and_then<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_row(sql, params, map)
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>, StoreError> {
        Ok(Statement {
            connection: self,
            sql: sql.to_string(),
        })
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>, StoreError> {
        self.prepare(sql)
    }

    /// Every row of a query, owned.
    fn fetch(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row<'static>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => {
                let mut statement = connection.prepare_cached(sql)?;
                let columns: Arc<[String]> = statement
                    .column_names()
                    .map(|name| name.to_string())
                    .collect();
                let count = columns.len();
                let mut rows =
                    statement.query(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut values = Vec::with_capacity(count);
                    for index in 0..count {
                        values.push(match row.get_ref(index)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(number) => Value::Integer(number),
                            rusqlite::types::ValueRef::Real(number) => Value::Real(number),
                            rusqlite::types::ValueRef::Text(text) => {
                                Value::Text(String::from_utf8_lossy(text).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
                        });
                    }
                    out.push(Row {
                        columns: columns.clone(),
                        values,
                        _rows: std::marker::PhantomData,
                    });
                }
                Ok(out)
            }
            Backend::Postgres { .. } => {
                let rows = self.postgres_call(sql, &values, |client, statement, params| {
                    client.query(statement, params)
                })?;
                let Some(first) = rows.first() else {
                    return Ok(Vec::new());
                };
                let columns: Arc<[String]> = first
                    .columns()
                    .iter()
                    .map(|column| column.name().to_string())
                    .collect();
                rows.iter()
                    .map(|row| {
                        let values = (0..columns.len())
                            .map(|index| postgres_value(row, index))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Row {
                            columns: columns.clone(),
                            values,
                            _rows: std::marker::PhantomData,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Prepares (once per text) and runs a statement on PostgreSQL.
    fn postgres_call<T>(
        &self,
        sql: &str,
        values: &[Value],
        call: impl FnOnce(
            &mut postgres::Client,
            &postgres::Statement,
            &[&(dyn postgres::types::ToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let Backend::Postgres { client, statements } = &self.backend else {
            unreachable!("postgres_call on a SQLite connection");
        };
        let translated = translate_placeholders(sql);
        let mut client = client.borrow_mut();
        let statement = {
            let cached = statements.borrow().get(&translated).cloned();
            match cached {
                Some(statement) => statement,
                None => {
                    let statement = blocking(|| client.prepare(&translated))
                        .map_err(StoreError::from_postgres)?;
                    statements
                        .borrow_mut()
                        .insert(translated.clone(), statement.clone());
                    statement
                }
            }
        };
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|value| value as &(dyn postgres::types::ToSql + Sync))
            .collect();
        blocking(|| call(&mut client, &statement, &params)).map_err(StoreError::from_postgres)
    }

    /// Starts a transaction. `Immediate`: the writer lock (SQLite's
    /// `BEGIN IMMEDIATE`; `BEGIN` + `pg_advisory_xact_lock` on PostgreSQL)
    /// and then the fencing check when this connection carries an epoch.
    pub fn transaction_with_behavior(
        &self,
        behavior: TransactionBehavior,
    ) -> Result<Transaction<'_>, StoreError> {
        if self.in_transaction.get() {
            return Err(StoreError::NestedTransaction);
        }
        if self.batch.get().is_some() {
            // Inside a write batch: a savepoint of the outer transaction,
            // which holds the writer lock and was checked for fencing.
            self.execute_batch("SAVEPOINT ringmaster_write")?;
            self.in_transaction.set(true);
            let transaction = Transaction {
                connection: self,
                done: false,
                savepoint: true,
            };
            if behavior == TransactionBehavior::Immediate {
                self.check_epoch()?;
            }
            return Ok(transaction);
        }
        self.begin_outer(behavior)?;
        self.in_transaction.set(true);
        let transaction = Transaction {
            connection: self,
            done: false,
            savepoint: false,
        };
        if behavior != TransactionBehavior::Deferred && self.dialect() == Dialect::Postgres {
            self.fetch(
                "SELECT pg_advisory_xact_lock(?1)",
                vec![Value::Integer(WRITER_LOCK_KEY)],
            )?;
        }
        if behavior == TransactionBehavior::Immediate {
            self.check_epoch()?;
        }
        Ok(transaction)
    }

    fn begin_outer(&self, behavior: TransactionBehavior) -> Result<(), StoreError> {
        match (&self.backend, behavior) {
            (
                Backend::Sqlite(connection),
                TransactionBehavior::Immediate | TransactionBehavior::Unfenced,
            ) => connection.execute_batch("BEGIN IMMEDIATE")?,
            (Backend::Sqlite(connection), TransactionBehavior::Deferred) => {
                connection.execute_batch("BEGIN DEFERRED")?
            }
            (
                Backend::Postgres { .. },
                TransactionBehavior::Immediate | TransactionBehavior::Unfenced,
            ) => self.execute_batch("BEGIN")?,
            (Backend::Postgres { .. }, TransactionBehavior::Deferred) => {
                self.execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?
            }
        }
        Ok(())
    }

    /// Opens a write batch: until [`Connection::end_batch`], the writes of
    /// this connection share commits (a bounded number per commit). The
    /// caller decides where the writes so far must be durable — before
    /// anything outside the database acts on them (a plane call, an
    /// evidence append) — and calls [`Connection::flush_batch`] there.
    /// A crash loses at most the writes since the last commit, which is
    /// the state the store had at that commit: what a crash there would
    /// have left with one commit per write. No-op when one is open.
    pub fn begin_batch(&self) -> Result<(), StoreError> {
        if self.batch.get().is_some() {
            return Ok(());
        }
        if self.in_transaction.get() {
            return Err(StoreError::NestedTransaction);
        }
        self.begin_outer(TransactionBehavior::Immediate)?;
        let checked = (|| {
            if self.dialect() == Dialect::Postgres {
                self.fetch(
                    "SELECT pg_advisory_xact_lock(?1)",
                    vec![Value::Integer(WRITER_LOCK_KEY)],
                )?;
            }
            self.check_epoch()
        })();
        if let Err(error) = checked {
            let _ = self.execute_batch("ROLLBACK");
            return Err(error);
        }
        self.batch.set(Some(Batch {
            writes: 0,
            began: std::time::Instant::now(),
        }));
        Ok(())
    }

    /// Whether a write batch is open.
    pub fn in_batch(&self) -> bool {
        self.batch.get().is_some()
    }

    /// Makes every write of the open batch durable (one commit) and opens
    /// the next batch. No-op without a batch or without a write since the
    /// last commit.
    pub fn flush_batch(&self) -> Result<(), StoreError> {
        match self.batch.get() {
            Some(batch) if batch.writes > 0 => {
                self.end_batch(true)?;
                self.begin_batch()
            }
            _ => Ok(()),
        }
    }

    /// Closes the open batch: commits it (`commit`), or rolls it back to
    /// its last commit (what a crash would leave). No-op without one.
    pub fn end_batch(&self, commit: bool) -> Result<(), StoreError> {
        if self.batch.take().is_none() {
            return Ok(());
        }
        if self.in_transaction.get() {
            // A savepoint still open (a transaction leaked by a panic):
            // nothing of the batch is trusted.
            self.in_transaction.set(false);
            let _ = self.execute_batch("ROLLBACK");
            return Err(StoreError::NestedTransaction);
        }
        if !commit {
            return self.execute_batch("ROLLBACK");
        }
        let committed = self.execute_batch("COMMIT");
        if committed.is_err()
            && let Some(connection) = self.as_sqlite()
            && !connection.is_autocommit()
        {
            let _ = connection.execute_batch("ROLLBACK");
        }
        committed
    }

    /// A savepoint released into the batch: counted, and the batch
    /// committed and begun again once it is full or has been open long.
    fn released_into_batch(&self) -> Result<(), StoreError> {
        let Some(mut batch) = self.batch.get() else {
            return Ok(());
        };
        batch.writes += 1;
        self.batch.set(Some(batch));
        if batch.writes >= BATCH_MAX_WRITES || batch.began.elapsed() >= BATCH_MAX_OPEN {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// A read snapshot (rusqlite's name).
    pub fn unchecked_transaction(&self) -> Result<Transaction<'_>, StoreError> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }

    /// Inside a write transaction: refuses to go on when a newer epoch than
    /// this connection's exists.
    fn check_epoch(&self) -> Result<(), StoreError> {
        let Some(mine) = self.epoch.get() else {
            return Ok(());
        };
        match self.dialect() {
            // The database raises; the error is mapped to `Fenced`.
            Dialect::Postgres => {
                self.fetch("SELECT ringmaster_fence(?1)", vec![Value::Integer(mine)])?;
                Ok(())
            }
            // Under BEGIN IMMEDIATE no other writer runs: the check holds
            // until commit.
            Dialect::Sqlite => {
                let current: Option<i64> = self
                    .fetch("SELECT epoch FROM leadership WHERE singleton = 1", vec![])?
                    .first()
                    .map(|row| row.get(0))
                    .transpose()?;
                match current {
                    Some(current) if current > mine => Err(StoreError::Fenced {
                        mine: mine as u64,
                        current: current as u64,
                    }),
                    _ => Ok(()),
                }
            }
        }
    }

    fn finish(&self, sql: &str) -> Result<(), StoreError> {
        self.in_transaction.set(false);
        self.execute_batch(sql)
    }
}

/// A transaction; rolled back when dropped without [`Transaction::commit`].
pub struct Transaction<'c> {
    connection: &'c Connection,
    done: bool,
    /// A savepoint inside a write batch, not a transaction of its own.
    savepoint: bool,
}

impl Transaction<'_> {
    /// Commits. If `COMMIT` fails the transaction is rolled back (SQLite
    /// keeps it open after a failed commit; PostgreSQL has ended it), so the
    /// connection is usable again and nothing of it is stored.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.done = true;
        if self.savepoint {
            self.connection
                .finish("RELEASE SAVEPOINT ringmaster_write")?;
            return self.connection.released_into_batch();
        }
        let committed = self.connection.finish("COMMIT");
        if committed.is_err()
            && let Some(connection) = self.connection.as_sqlite()
            && !connection.is_autocommit()
        {
            let _ = connection.execute_batch("ROLLBACK");
        }
        committed
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.connection.finish(if self.savepoint {
                "ROLLBACK TO SAVEPOINT ringmaster_write; RELEASE SAVEPOINT ringmaster_write"
            } else {
                "ROLLBACK"
            });
        }
    }
}

/// `?N` → `$N`, `?` → `$k` (counting), outside quoted text.
pub(super) fn translate_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut counter = 0;
    while let Some(character) = chars.next() {
        match quote {
            Some(open) => {
                out.push(character);
                if character == open {
                    quote = None;
                }
            }
            None => match character {
                '\'' | '"' => {
                    quote = Some(character);
                    out.push(character);
                }
                '?' => {
                    let mut digits = String::new();
                    while let Some(digit) = chars.peek().filter(|next| next.is_ascii_digit()) {
                        digits.push(*digit);
                        chars.next();
                    }
                    if digits.is_empty() {
                        counter += 1;
                        digits = counter.to_string();
                    }
                    out.push('$');
                    out.push_str(&digits);
                }
                other => out.push(other),
            },
        }
    }
    out
}

struct SqliteValue<'a>(&'a Value);

impl rusqlite::ToSql for SqliteValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(number) => ValueRef::Integer(*number),
            Value::Real(number) => ValueRef::Real(*number),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(number) => match *ty {
                Type::INT8 => number.to_sql(ty, out),
                Type::INT4 => i32::try_from(*number)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*number)?.to_sql(ty, out),
                Type::FLOAT8 => (*number as f64).to_sql(ty, out),
                Type::BOOL => (*number != 0).to_sql(ty, out),
                _ => number.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(number) => match *ty {
                Type::FLOAT4 => (*number as f32).to_sql(ty, out),
                Type::FLOAT8 => number.to_sql(ty, out),
                _ => number.to_string().as_str().to_sql(ty, out),
            },
            Value::Text(text) => text.as_str().to_sql(ty, out),
            Value::Blob(bytes) => bytes.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn postgres_value(row: &postgres::Row, index: usize) -> Result<Value, StoreError> {
    use postgres::types::Type;
    let column = &row.columns()[index];
    let decode = |error: postgres::Error| StoreError::Decode {
        column: column.name().to_string(),
        detail: error.to_string(),
    };
    let value = match *column.type_() {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(decode)?
            .map(Value::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(decode)?
            .map(|number| Value::Integer(i64::from(number))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(decode)?
            .map(|number| Value::Integer(i64::from(number))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map_err(decode)?
            .map(|flag| Value::Integer(i64::from(flag))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map_err(decode)?
            .map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map_err(decode)?
            .map(|number| Value::Real(f64::from(number))),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(index)
            .map_err(decode)?
            .map(Value::Blob),
        Type::VOID => None,
        _ => row
            .try_get::<_, Option<String>>(index)
            .map_err(decode)?
            .map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// Whether `error` is a unique-constraint violation (either engine).
pub(super) fn is_unique_violation(error: &StoreError) -> bool {
    match error {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
            failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        }
        StoreError::Postgres(error) => {
            error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
        }
        _ => false,
    }
}

/// Whether `error` is a foreign-key violation (either engine).
pub(super) fn is_foreign_key_violation(error: &StoreError) -> bool {
    match error {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
            failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
        }
        StoreError::Postgres(error) => {
            error.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            translate_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?1'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?1'"
        );
        assert_eq!(
            translate_placeholders("WHERE a > ? AND b = ? LIMIT ?"),
            "WHERE a > $1 AND b = $2 LIMIT $3"
        );
    }
}
