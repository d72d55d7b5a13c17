//! Process exit codes, from sysexits(3), defined once for every command.

/// Done.
pub const OK: i32 = 0;
/// A bad command line or configuration (EX_USAGE): every problem is listed.
pub const USAGE: i32 = 64;
/// The admin API refused a request as malformed (EX_DATAERR, its 400).
pub const DATAERR: i32 = 65;
/// A listener, the store or the admin API could not be reached (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;
/// The admin API answered something unexpected (EX_SOFTWARE).
pub const SOFTWARE: i32 = 70;
/// The admin token was refused (EX_NOPERM).
pub const NOPERM: i32 = 77;
