use super::*;
use serde_json::{json, Value};

fn addr(name: &str, line2: Option<&str>, region: Option<&str>) -> Address {
    Address {
        name: name.into(),
        line1: "731 Market St".into(),
        line2: line2.map(Into::into),
        city: "San Francisco".into(),
        region: region.map(Into::into),
        postal_code: "94103".into(),
        country: "US".into(),
        phone: Some("+14155550100".into()),
        email: None,
    }
}

#[test]
fn builds_the_shipment_request() {
    let from = addr("Plinth Shop", Some("Suite 200"), Some("CA"));
    let to = addr("Ada", Some("  "), None);
    let parcels = [Parcel {
        weight_grams: 1250,
        length_mm: 305,
        width_mm: 200,
        height_mm: 7,
    }];
    let req = shipment_request(&from, &to, &parcels).unwrap();
    let body: Value = serde_json::to_value(&req).unwrap();
    assert_eq!(
        body,
        json!({
            "address_from": {
                "name": "Plinth Shop", "street1": "731 Market St", "street2": "Suite 200",
                "city": "San Francisco", "state": "CA", "zip": "94103", "country": "US",
                "phone": "+14155550100"
            },
            "address_to": {
                "name": "Ada", "street1": "731 Market St", "city": "San Francisco",
                "zip": "94103", "country": "US", "phone": "+14155550100"
            },
            "parcels": [{
                "length": "30.5", "width": "20", "height": "0.7", "distance_unit": "cm",
                "weight": "1250", "mass_unit": "g"
            }],
            "async": false
        })
    );
    assert!(matches!(
        shipment_request(&from, &to, &[]),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn builds_the_transaction_request() {
    let req = TransactionRequest {
        rate: "r1",
        label_file_type: "PDF",
        is_async: false,
        metadata: "plinth-o1",
    };
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"rate": "r1", "label_file_type": "PDF", "async": false, "metadata": "plinth-o1"})
    );
    assert_eq!(metadata_for("k"), "k");
    let long = "é".repeat(150);
    assert_eq!(metadata_for(&long).chars().count(), 100);
}

#[test]
fn converts_millimetres() {
    assert_eq!(mm_to_cm(0), "0");
    assert_eq!(mm_to_cm(9), "0.9");
    assert_eq!(mm_to_cm(300), "30");
    assert_eq!(mm_to_cm(u32::MAX), "429496729.5");
}

/// The shape of Shippo's documented `POST /shipments/` answer (abridged).
const SHIPMENT: &str = r#"{
  "object_id": "5e40ead7cffe4cc1ad45108696162e42",
  "status": "SUCCESS",
  "address_from": {"object_id": "d799c2679e644279b59fe661ac8fa488"},
  "parcels": [{"object_id": "7df2ecf8b4224763ab7c71fae7ec8274"}],
  "rates": [
    {
      "object_id": "adcfdddf8ec64b84ad22772bce3ea37a",
      "amount": "12.10", "currency": "USD", "amount_local": "12.10", "currency_local": "USD",
      "provider": "USPS",
      "servicelevel": {"name": "Priority Mail Express", "token": "usps_priority_express", "terms": ""},
      "estimated_days": 1, "duration_terms": "Overnight delivery", "attributes": ["FASTEST"],
      "carrier_account": "078870331023437cb917f5187429b093", "messages": []
    },
    {
      "object_id": "b2", "amount": "5.5", "currency": "USD", "provider": "USPS",
      "servicelevel": {"name": "Ground Advantage", "token": "usps_ground_advantage"},
      "estimated_days": 4, "attributes": ["CHEAPEST"]
    },
    {
      "object_id": "c3", "amount": "5.50", "currency": "USD", "provider": "UPS",
      "servicelevel": {"name": null, "token": "ups_ground"}, "estimated_days": null
    },
    {
      "object_id": "d4", "amount": "n/a", "currency": "USD", "provider": "Odd",
      "servicelevel": {"name": "Broken"}
    }
  ],
  "messages": [{"source": "FedEx", "code": "", "text": "FedEx cannot be used for this route"}]
}"#;

#[test]
fn maps_rates_cheapest_first() {
    let shipment: Shipment = serde_json::from_str(SHIPMENT).unwrap();
    let (rates, problems) = rates(shipment).unwrap();
    let ids: Vec<&str> = rates.iter().map(|r| r.rate_id.as_str()).collect();
    assert_eq!(ids, ["b2", "c3", "adcfdddf8ec64b84ad22772bce3ea37a"]);
    let first = &rates[0];
    assert_eq!(first.carrier, "USPS");
    assert_eq!(first.service, "Ground Advantage");
    assert_eq!(
        (first.amount.amount, first.amount.currency.as_str()),
        (550, "USD")
    );
    assert_eq!(first.estimated_days, Some(4));
    assert_eq!(rates[1].service, "ups_ground", "token when the name is missing");
    assert_eq!(rates[1].estimated_days, None);
    assert_eq!(rates[2].amount.amount, 1210);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("d4"), "{problems:?}");
}

#[test]
fn an_errored_or_empty_shipment() {
    let errored: Shipment = serde_json::from_value(json!({
        "object_id": "s", "status": "ERROR", "rates": [],
        "messages": [{"source": "USPS", "code": "invalid_address", "text": "Address not found"}]
    }))
    .unwrap();
    match rates(errored) {
        Err(Error::Upstream(m)) => assert_eq!(m, "USPS: Address not found"),
        other => panic!("{other:?}"),
    }
    let empty: Shipment = serde_json::from_value(
        json!({"object_id": "s", "status": "SUCCESS", "rates": null, "messages": null}),
    )
    .unwrap();
    let (rates, problems) = rates(empty).unwrap();
    assert!(rates.is_empty() && problems.is_empty());
}

#[test]
fn a_rate_with_other_currencies() {
    let rate: ShippoRate = serde_json::from_value(json!({
        "object_id": "r", "amount": 1500, "currency": "jpy", "provider": "Japan Post",
        "servicelevel": {"name": "EMS"}, "estimated_days": 3
    }))
    .unwrap();
    let m = rate.money().unwrap();
    assert_eq!((m.amount, m.currency.as_str()), (1500, "JPY"));
    let kwd: ShippoRate = serde_json::from_value(json!({
        "object_id": "r", "amount": "2.125", "currency": "KWD", "provider": "Aramex"
    }))
    .unwrap();
    assert_eq!(kwd.money().unwrap().amount, 2125);
}

#[test]
fn reads_transactions() {
    let tx: Transaction = serde_json::from_value(json!({
        "object_id": "915d94940ea54c3a80cbfa328722f5a1", "object_state": "VALID", "status": "SUCCESS",
        "rate": "ec9f0d3adc9441449c85d315f0997fd5", "tracking_number": "9499907123456123456781",
        "tracking_status": "UNKNOWN", "tracking_url_provider": "https://tools.usps.com/x",
        "label_url": "https://shippo-delivery.s3.amazonaws.com/70ae8117ee1749e393f249d5b77c45e0.pdf",
        "metadata": "plinth-o1", "messages": [], "test": true
    }))
    .unwrap();
    assert_eq!(tx.status(), "SUCCESS");
    assert!(!tx.is_pending());
    let failed: Transaction = serde_json::from_value(json!({
        "object_id": "t2", "status": "ERROR", "tracking_number": "", "label_url": "",
        "messages": [{"source": "UPS", "code": "", "text": "Invalid ZIP"}, {"text": "Try again"}, "plain"]
    }))
    .unwrap();
    assert_eq!(
        join_messages(&failed.messages, "x"),
        "UPS: Invalid ZIP; Try again; plain"
    );
    let list: TransactionList = serde_json::from_value(
        json!({"next": null, "previous": null, "results": [{"object_id": "t", "object_status": "QUEUED"}]}),
    )
    .unwrap();
    assert!(list.results[0].is_pending());
}

/// The shape of Shippo's documented `GET /tracks/{carrier}/{number}` answer.
const TRACK: &str = r#"{
  "carrier": "usps",
  "tracking_number": "9205590164917312751089",
  "address_from": {"city": "Las Vegas", "state": "NV", "zip": "89101", "country": "US"},
  "address_to": {"city": "Spotsylvania", "state": "VA", "zip": "22551", "country": "US"},
  "eta": "2016-07-23T00:00:00Z",
  "original_eta": "2016-07-23T00:00:00Z",
  "servicelevel": {"token": "usps_priority", "name": "Priority Mail"},
  "metadata": null,
  "tracking_status": {
    "object_created": "2016-07-23T20:35:26.129Z", "object_updated": "2016-07-23T20:35:26.129Z",
    "object_id": "ce48ff3d52a34e91b77aa98370182624", "status": "DELIVERED",
    "status_details": "Your shipment has been delivered at the destination mailbox.",
    "status_date": "2016-07-23T13:03:00Z",
    "substatus": null,
    "location": {"city": "Spotsylvania", "state": "VA", "zip": "22551", "country": "US"}
  },
  "tracking_history": [
    {
      "object_created": "2016-07-22T14:36:50.943Z", "object_id": "265c7a7c23354da5b87b2bf52656c625",
      "status": "TRANSIT", "status_details": "Your shipment has been accepted.",
      "status_date": "2016-07-21T15:33:00Z",
      "location": {"city": "Las Vegas", "state": "NV", "zip": "89101", "country": "US"}
    },
    {
      "object_created": "2016-07-23T20:35:26.129Z", "object_id": "aab1d7c0559d43ccbba4ff8603089e56",
      "status": "DELIVERED", "status_details": "",
      "status_date": null,
      "location": null
    },
    {"status": "UNKNOWN", "status_details": "no date at all", "status_date": null}
  ],
  "transaction": null,
  "messages": []
}"#;

#[test]
fn maps_tracking() {
    let track: Track = serde_json::from_str(TRACK).unwrap();
    let t = tracking(track, "USPS", "asked");
    assert_eq!(t.tracking_number, "9205590164917312751089");
    assert_eq!(t.carrier, "USPS");
    assert_eq!(t.status, "DELIVERED");
    assert_eq!(t.eta.as_deref(), Some("2016-07-23T00:00:00Z"));
    assert_eq!(t.events.len(), 2, "the dateless event is left out");
    let first = &t.events[0];
    assert_eq!(first.status, "TRANSIT");
    assert_eq!(first.description, "Your shipment has been accepted.");
    assert_eq!(first.location.as_deref(), Some("Las Vegas, NV, US"));
    assert_eq!(first.occurred_at, "2016-07-21T15:33:00Z");
    let second = &t.events[1];
    assert_eq!(
        second.description, "DELIVERED",
        "status when there are no details"
    );
    assert_eq!(second.location, None);
    assert_eq!(
        second.occurred_at, "2016-07-23T20:35:26.129Z",
        "object_created as a fallback"
    );
}

#[test]
fn unknown_tracking() {
    let track: Track = serde_json::from_value(json!({
        "carrier": "usps", "tracking_number": "", "eta": null, "tracking_status": null,
        "tracking_history": [], "messages": ["The carrier has not sent any tracking information yet"]
    }))
    .unwrap();
    let t = tracking(track, "usps", "9400");
    assert_eq!(
        (t.status.as_str(), t.tracking_number.as_str()),
        ("UNKNOWN", "9400")
    );
    assert!(t.events.is_empty() && t.eta.is_none());
    let partial = TrackLocation {
        city: None,
        state: Some("NV".into()),
        country: Some("US".into()),
    };
    assert_eq!(partial.render().as_deref(), Some("NV, US"));
}

#[test]
fn carrier_tokens() {
    for (name, token) in [
        ("USPS", "usps"),
        ("UPS", "ups"),
        ("FedEx", "fedex"),
        ("DHL Express", "dhl_express"),
        ("Canada Post", "canada_post"),
        ("  dhl_express ", "dhl_express"),
        ("DPD GERMANY", "dpd_de"),
        ("Evri UK", "hermes_uk"),
        ("Correos España", "correos_espana"),
        ("GLS US", "gls_us"),
    ] {
        assert_eq!(carrier_token(name), token, "{name}");
    }
}
