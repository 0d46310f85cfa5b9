pub mod close_receipt;
pub mod pay;

pub use close_receipt::*;
pub use pay::*;
