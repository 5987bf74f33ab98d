//! The object-model calls the HTTP layer makes, in one place: defaulting, validation, unknown
//! fields, spec comparison and Table rendering, all from `navarch-api`.

pub use navarch_api::table::to_table;
pub use navarch_api::validation::{
    default_object, spec_changed, unknown_fields, validate_create, validate_update,
};
