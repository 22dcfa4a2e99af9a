//! One typed entry point per export of each plugin world. Each builds the guest call
//! and hands it to [`Runtime::run`], which owns deadlines, limits and error mapping.

use super::bindings::{http, payment, rules, shipping, weather, HttpRequest, HttpResponse, Identity};
use super::error::InvokeError;
use futures::future::BoxFuture;

use super::invoke::{wrong_world, Completed, GuestCall};
use super::registry::{Plugin, WorldPre};
use super::state::PluginState;
use super::Runtime;
use crate::domain::{RequestId, World};

use payment::exports::plinth::plugin::payment_gateway as pay;
use rules::exports::plinth::plugin::checkout_rules as rule;
use shipping::exports::plinth::plugin::shipping_provider as ship;
use weather::exports::plinth::plugin::weather_provider as wx;

fn http_pre(plugin: &Plugin) -> Result<http::HttpPluginPre<PluginState>, InvokeError> {
    match &plugin.pre {
        WorldPre::Http(pre) => Ok(pre.clone()),
        _ => Err(wrong_world(plugin, World::Http)),
    }
}

fn weather_pre(plugin: &Plugin) -> Result<weather::WeatherPluginPre<PluginState>, InvokeError> {
    match &plugin.pre {
        WorldPre::Weather(pre) => Ok(pre.clone()),
        _ => Err(wrong_world(plugin, World::Weather)),
    }
}

fn payment_pre(plugin: &Plugin) -> Result<payment::PaymentPluginPre<PluginState>, InvokeError> {
    match &plugin.pre {
        WorldPre::Payment(pre) => Ok(pre.clone()),
        _ => Err(wrong_world(plugin, World::Payment)),
    }
}

fn shipping_pre(plugin: &Plugin) -> Result<shipping::ShippingPluginPre<PluginState>, InvokeError> {
    match &plugin.pre {
        WorldPre::Shipping(pre) => Ok(pre.clone()),
        _ => Err(wrong_world(plugin, World::Shipping)),
    }
}

fn rules_pre(plugin: &Plugin) -> Result<rules::RulesPluginPre<PluginState>, InvokeError> {
    match &plugin.pre {
        WorldPre::Rules(pre) => Ok(pre.clone()),
        _ => Err(wrong_world(plugin, World::Rules)),
    }
}

/// Pins down the higher-ranked signature the closure needs.
fn boxed_call<R, F>(call: F) -> GuestCall<R>
where
    F: for<'a> FnOnce(&'a mut wasmtime::Store<PluginState>) -> BoxFuture<'a, wasmtime::Result<R>>
        + Send
        + 'static,
{
    Box::new(call)
}

/// Instantiates with `$pre` in the Store, then calls `$export().$method(store, args…)`.
macro_rules! guest_call {
    ($pre:expr, $export:ident . $method:ident ( $($arg:expr),* )) => {{
        let pre = $pre;
        boxed_call(move |store| {
            Box::pin(async move {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.$export().$method(&mut *store, $($arg),*).await
            })
        })
    }};
}

impl Runtime {
    /// `http-handler.handle`.
    pub async fn handle_http(
        &self,
        plugin: &Plugin,
        req: HttpRequest,
        caller: Option<Identity>,
        request_id: &RequestId,
    ) -> Result<Completed<HttpResponse>, InvokeError> {
        let call = guest_call!(
            http_pre(plugin)?,
            plinth_plugin_http_handler.call_handle(&req, caller.as_ref())
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `weather-provider.geocode`.
    pub async fn weather_geocode(
        &self,
        plugin: &Plugin,
        city: String,
        request_id: &RequestId,
    ) -> Result<Completed<wx::Location>, InvokeError> {
        let call = guest_call!(
            weather_pre(plugin)?,
            plinth_plugin_weather_provider.call_geocode(&city)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `weather-provider.current`.
    pub async fn weather_current(
        &self,
        plugin: &Plugin,
        at: wx::Location,
        request_id: &RequestId,
    ) -> Result<Completed<wx::Conditions>, InvokeError> {
        let call = guest_call!(
            weather_pre(plugin)?,
            plinth_plugin_weather_provider.call_current(&at)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `weather-provider.forecast`.
    pub async fn weather_forecast(
        &self,
        plugin: &Plugin,
        at: wx::Location,
        days: u8,
        request_id: &RequestId,
    ) -> Result<Completed<Vec<wx::DailyForecast>>, InvokeError> {
        let call = guest_call!(
            weather_pre(plugin)?,
            plinth_plugin_weather_provider.call_forecast(&at, days)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `payment-gateway.charge`; the provider's own error (e.g. a decline) is the inner `Err`.
    pub async fn payment_charge(
        &self,
        plugin: &Plugin,
        req: pay::ChargeRequest,
        request_id: &RequestId,
    ) -> Result<Completed<Result<pay::ChargeReceipt, pay::PaymentError>>, InvokeError> {
        let call = guest_call!(
            payment_pre(plugin)?,
            plinth_plugin_payment_gateway.call_charge(&req)
        );
        self.run(plugin, request_id, call).await
    }

    /// `payment-gateway.refund`.
    pub async fn payment_refund(
        &self,
        plugin: &Plugin,
        req: pay::RefundRequest,
        request_id: &RequestId,
    ) -> Result<Completed<Result<pay::RefundReceipt, pay::PaymentError>>, InvokeError> {
        let call = guest_call!(
            payment_pre(plugin)?,
            plinth_plugin_payment_gateway.call_refund(&req)
        );
        self.run(plugin, request_id, call).await
    }

    /// `payment-gateway.find-charge`.
    pub async fn payment_find_charge(
        &self,
        plugin: &Plugin,
        req: pay::ChargeLookup,
        request_id: &RequestId,
    ) -> Result<Completed<Result<Option<pay::ChargeReceipt>, pay::PaymentError>>, InvokeError> {
        let call = guest_call!(
            payment_pre(plugin)?,
            plinth_plugin_payment_gateway.call_find_charge(&req)
        );
        self.run(plugin, request_id, call).await
    }

    /// `payment-gateway.parse-webhook`.
    pub async fn payment_parse_webhook(
        &self,
        plugin: &Plugin,
        req: pay::WebhookRequest,
        request_id: &RequestId,
    ) -> Result<Completed<Result<pay::WebhookEvent, pay::PaymentError>>, InvokeError> {
        let call = guest_call!(
            payment_pre(plugin)?,
            plinth_plugin_payment_gateway.call_parse_webhook(&req)
        );
        self.run(plugin, request_id, call).await
    }

    /// `shipping-provider.rates`.
    pub async fn shipping_rates(
        &self,
        plugin: &Plugin,
        origin: ship::Address,
        destination: ship::Address,
        parcels: Vec<ship::Parcel>,
        request_id: &RequestId,
    ) -> Result<Completed<Vec<ship::Rate>>, InvokeError> {
        let call = guest_call!(
            shipping_pre(plugin)?,
            plinth_plugin_shipping_provider.call_rates(&origin, &destination, &parcels)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `shipping-provider.buy-label`.
    pub async fn shipping_buy_label(
        &self,
        plugin: &Plugin,
        rate_id: String,
        idempotency_key: String,
        request_id: &RequestId,
    ) -> Result<Completed<ship::Label>, InvokeError> {
        let call = guest_call!(
            shipping_pre(plugin)?,
            plinth_plugin_shipping_provider.call_buy_label(&rate_id, &idempotency_key)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `shipping-provider.track`.
    pub async fn shipping_track(
        &self,
        plugin: &Plugin,
        carrier: String,
        tracking_number: String,
        request_id: &RequestId,
    ) -> Result<Completed<ship::Tracking>, InvokeError> {
        let call = guest_call!(
            shipping_pre(plugin)?,
            plinth_plugin_shipping_provider.call_track(&carrier, &tracking_number)
        );
        self.run(plugin, request_id, call).await?.guest_result(plugin)
    }

    /// `checkout-rules.apply`; a rejection is the inner `Err`.
    pub async fn rules_apply(
        &self,
        plugin: &Plugin,
        cart: rule::Cart,
        customer: rule::Customer,
        prior: Vec<rule::Adjustment>,
        request_id: &RequestId,
    ) -> Result<Completed<Result<Vec<rule::Adjustment>, rule::Rejection>>, InvokeError> {
        let call = guest_call!(
            rules_pre(plugin)?,
            plinth_plugin_checkout_rules.call_apply(&cart, &customer, &prior)
        );
        self.run(plugin, request_id, call).await
    }
}
