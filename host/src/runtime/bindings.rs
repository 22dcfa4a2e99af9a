//! The one place the host generates bindings from `wit/`. Every world shares the
//! capability interfaces generated for `http-plugin`, so one `Host` implementation of
//! `kv`, `config`, `log` and `outbound` serves them all.

pub mod http {
    wasmtime::component::bindgen!({
        world: "http-plugin",
        path: "../wit",
        imports: {
            "plinth:plugin/outbound.send": async | trappable,
            "plinth:plugin/kv": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

pub mod weather {
    wasmtime::component::bindgen!({
        world: "weather-plugin",
        path: "../wit",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "plinth:plugin/types": super::http::plinth::plugin::types,
            "plinth:plugin/config": super::http::plinth::plugin::config,
            "plinth:plugin/log": super::http::plinth::plugin::log,
            "plinth:plugin/outbound": super::http::plinth::plugin::outbound,
        },
    });
}

pub mod payment {
    wasmtime::component::bindgen!({
        world: "payment-plugin",
        path: "../wit",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "plinth:plugin/types": super::http::plinth::plugin::types,
            "plinth:plugin/kv": super::http::plinth::plugin::kv,
            "plinth:plugin/config": super::http::plinth::plugin::config,
            "plinth:plugin/log": super::http::plinth::plugin::log,
            "plinth:plugin/outbound": super::http::plinth::plugin::outbound,
        },
    });
}

pub mod shipping {
    wasmtime::component::bindgen!({
        world: "shipping-plugin",
        path: "../wit",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "plinth:plugin/types": super::http::plinth::plugin::types,
            "plinth:plugin/kv": super::http::plinth::plugin::kv,
            "plinth:plugin/config": super::http::plinth::plugin::config,
            "plinth:plugin/log": super::http::plinth::plugin::log,
            "plinth:plugin/outbound": super::http::plinth::plugin::outbound,
        },
    });
}

pub mod rules {
    wasmtime::component::bindgen!({
        world: "rules-plugin",
        path: "../wit",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "plinth:plugin/types": super::http::plinth::plugin::types,
            "plinth:plugin/config": super::http::plinth::plugin::config,
            "plinth:plugin/log": super::http::plinth::plugin::log,
        },
    });
}

pub use http::plinth::plugin::types::{
    Error as GuestError, HttpRequest, HttpResponse, Identity, OutboundRequest,
};
pub use http::plinth::plugin::{config, kv, log, outbound};
