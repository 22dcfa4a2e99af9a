//! Guest SDK for Plinth plugins.
//!
//! Each plugin world of `wit/` is a module behind a cargo feature of the same name
//! (`http`, `weather`, `payment`, `shipping`, `rules`). Enable the one your plugin
//! implements, implement its `Guest` trait and call its export macro:
//!
//! ```ignore
//! use plinth_sdk::http::{Guest, HttpRequest, HttpResponse, Identity, Error};
//!
//! struct Hello;
//! impl Guest for Hello {
//!     fn handle(req: HttpRequest, _caller: Option<Identity>) -> Result<HttpResponse, Error> {
//!         Ok(HttpResponse::text(200, format!("hello from {}", req.path)))
//!     }
//! }
//! plinth_sdk::http::export_http_plugin!(Hello);
//! ```

#[cfg(feature = "http")]
pub mod http;

#[cfg(feature = "weather")]
pub mod weather {
    //! The `weather-plugin` world: implement [`Guest`] and call
    //! [`export_weather_plugin!`].
    wit_bindgen::generate!({
        world: "weather-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_weather_plugin",
        default_bindings_module: "plinth_sdk::weather",
    });
    pub use exports::plinth::plugin::weather_provider::*;
    pub use plinth::plugin::types::{Error, HttpResponse, OutboundRequest};
    pub use plinth::plugin::{config, log, outbound};
}

#[cfg(feature = "payment")]
pub mod payment {
    //! The `payment-plugin` world: implement [`Guest`] and call
    //! [`export_payment_plugin!`].
    wit_bindgen::generate!({
        world: "payment-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_payment_plugin",
        default_bindings_module: "plinth_sdk::payment",
    });
    pub use exports::plinth::plugin::payment_gateway::*;
    pub use plinth::plugin::types::{Error, HttpResponse, Money, OutboundRequest};
    pub use plinth::plugin::{config, kv, log, outbound};
}

#[cfg(feature = "shipping")]
pub mod shipping {
    //! The `shipping-plugin` world: implement [`Guest`] and call
    //! [`export_shipping_plugin!`].
    wit_bindgen::generate!({
        world: "shipping-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_shipping_plugin",
        default_bindings_module: "plinth_sdk::shipping",
    });
    pub use exports::plinth::plugin::shipping_provider::*;
    pub use plinth::plugin::types::{Error, HttpResponse, Money, OutboundRequest};
    pub use plinth::plugin::{config, kv, log, outbound};
}

#[cfg(feature = "rules")]
pub mod rules {
    //! The `rules-plugin` world (pure, deterministic): implement [`Guest`] and call
    //! [`export_rules_plugin!`].
    wit_bindgen::generate!({
        world: "rules-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_rules_plugin",
        default_bindings_module: "plinth_sdk::rules",
    });
    pub use exports::plinth::plugin::checkout_rules::*;
    pub use plinth::plugin::types::Money;
    pub use plinth::plugin::{config, log};
}
