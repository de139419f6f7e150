//! The building blocks of the signed-in pages (`templates/portal.html`):
//! sections of facts, tables and forms, so that every form has labels,
//! its CSRF token and its errors next to the fields the same way.

use std::collections::HashMap;

use crate::error::ApiError;

/// A part of a page with its own heading.
#[derive(Default)]
pub struct Section {
    /// Anchor and id of the heading.
    pub id: String,
    /// `<h2>`.
    pub heading: String,
    /// Paragraphs of text.
    pub paragraphs: Vec<String>,
    /// Commands to run, shown as code.
    pub commands: Vec<String>,
    /// Terms and their values.
    pub facts: Vec<(String, String)>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Forms.
    pub forms: Vec<Form>,
}

/// A table with a caption.
#[derive(Default)]
pub struct Table {
    /// `<caption>`.
    pub caption: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<Cell>>,
    /// Shown instead of an empty table.
    pub empty: String,
}

/// One cell of a table.
pub enum Cell {
    /// Plain text.
    Text(String),
    /// An identifier or hash (monospace, wraps anywhere).
    Code(String),
    /// A link: (href, text).
    Link(String, String),
    /// Buttons, each posting a small form.
    Buttons(Vec<Button>),
}

/// A button that posts a form with fixed values (and the CSRF token).
pub struct Button {
    /// Where it posts.
    pub action: String,
    /// Its text.
    pub label: String,
    /// Hidden fields.
    pub hidden: Vec<(String, String)>,
}

/// A form with labelled fields.
#[derive(Default)]
pub struct Form {
    /// Its id (also told apart when errors come back).
    pub id: String,
    /// `<h3>`.
    pub heading: String,
    /// Where it posts.
    pub action: String,
    /// The submit button's text.
    pub submit: String,
    /// Its fields.
    pub fields: Vec<Field>,
    /// An error not about one field.
    pub error: Option<String>,
}

/// What kind of control a field is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<input type=text>`.
    Text,
    /// `<textarea>`.
    TextArea,
    /// `<select>`.
    Select,
    /// `<input type=hidden>`.
    Hidden,
}

/// One field of a form.
pub struct Field {
    /// Form field name.
    pub name: String,
    /// Label text.
    pub label: String,
    /// Its control.
    pub kind: Kind,
    /// Current value.
    pub value: String,
    /// For a select: (value, text).
    pub options: Vec<(String, String)>,
    /// A hint under the field.
    pub help: String,
    /// The server's error about this field.
    pub error: String,
    /// Whether it must be filled in.
    pub required: bool,
}

impl Field {
    /// A text field.
    pub fn text(name: &str, label: &str) -> Field {
        Field {
            name: name.into(),
            label: label.into(),
            kind: Kind::Text,
            value: String::new(),
            options: Vec::new(),
            help: String::new(),
            error: String::new(),
            required: false,
        }
    }

    /// A text area.
    pub fn area(name: &str, label: &str) -> Field {
        Field {
            kind: Kind::TextArea,
            ..Field::text(name, label)
        }
    }

    /// A select among `options` (value, text).
    pub fn select(name: &str, label: &str, options: Vec<(String, String)>) -> Field {
        Field {
            kind: Kind::Select,
            options,
            ..Field::text(name, label)
        }
    }

    /// With a hint.
    pub fn help(mut self, text: &str) -> Field {
        self.help = text.into();
        self
    }

    /// Required.
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    /// With a default value.
    pub fn value(mut self, value: &str) -> Field {
        self.value = value.into();
        self
    }

    /// The control's id.
    pub fn control_id(&self, form: &str) -> String {
        format!("{form}-{}", self.name)
    }
}

/// A form that came back with an error: its values as posted and the
/// error, to show the form again with the error next to its field.
pub struct Posted {
    /// Which form.
    pub form: String,
    /// The values as posted.
    pub values: HashMap<String, String>,
    /// The field at fault (a form field name) and the message.
    pub field: Option<String>,
    /// The message.
    pub message: String,
}

impl Posted {
    /// A page's status: 400 when it shows a form sent back with an error.
    pub fn status(posted: Option<&Posted>) -> axum::http::StatusCode {
        match posted {
            Some(_) => axum::http::StatusCode::BAD_REQUEST,
            None => axum::http::StatusCode::OK,
        }
    }

    /// `error` about the form `form` posted with `values`; `fields` maps the
    /// API's field names (`price`, `rail.currency`) to the form's.
    pub fn new(
        form: &str,
        values: HashMap<String, String>,
        error: ApiError,
        fields: &[(&str, &str)],
    ) -> Posted {
        let field = error.field.as_deref().and_then(|api| {
            fields
                .iter()
                .find(|(a, _)| {
                    *a == api
                        || api.starts_with(&format!("{a}."))
                        || api.starts_with(&format!("{a}["))
                })
                .map(|(_, f)| f.to_string())
        });
        let message = match (&field, &error.field) {
            (None, Some(api)) => format!("{api}: {}", error.message),
            _ => error.message,
        };
        Posted {
            form: form.into(),
            values,
            field,
            message,
        }
    }

    /// An error about the form field `field`.
    pub fn field(
        form: &str,
        values: HashMap<String, String>,
        field: &str,
        message: &str,
    ) -> Posted {
        Posted {
            form: form.into(),
            values,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl Form {
    /// Fills the form with what was posted and shows the error, when the
    /// error is about this form.
    pub fn with(mut self, posted: Option<&Posted>) -> Form {
        let Some(p) = posted.filter(|p| p.form == self.id) else {
            return self;
        };
        for f in &mut self.fields {
            if f.kind != Kind::Hidden {
                if let Some(v) = p.values.get(&f.name) {
                    f.value = v.clone();
                }
            }
        }
        match p.field.as_ref().and_then(|name| {
            self.fields
                .iter_mut()
                .find(|f| &f.name == name && f.kind != Kind::Hidden)
        }) {
            Some(f) => f.error = p.message.clone(),
            None => self.error = Some(p.message.clone()),
        }
        self
    }
}
