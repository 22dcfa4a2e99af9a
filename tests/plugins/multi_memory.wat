;; `multi_memory`: an http-plugin whose four core module instances each define their own
;; linear memory, and whose `handle` grows every one of them to 63 pages (64 KiB short
;; of 4 MiB). Mounted with `memory_mib = 4`, it tests that the memory cap holds for all
;; of an instance's memories together (16.5 MB here), not for each one alone.
;;
;; Component-model text format, turned into a binary at test time with the `wat` crate
;; (tests/api/sandbox.rs). Four memories is the most the host's pooling allocator takes
;; (`max_memories_per_component`); the test adds a fifth instance of `$grower` at the
;; line marked below to check that such a component is refused at start-up.
;;
;; It exports `plinth:plugin/http-handler@0.1.0#handle` (wit/kinds.wit) by hand: the
;; request does not fit in 16 flat parameters, so the host writes it into `$main`'s
;; memory through `realloc` and passes a pointer; the result is returned as a pointer
;; to `result<http-response, error>` in that memory.
(component
  ;; One memory of one page that `grow` takes to 63 pages.
  (core module $grower
    (memory 1)
    (func (export "grow") (result i32)
      (memory.grow (i32.const 62))))

  (core module $main
    (import "a" "grow" (func $grow_a (result i32)))
    (import "b" "grow" (func $grow_b (result i32)))
    (import "c" "grow" (func $grow_c (result i32)))
    (memory (export "memory") 1)
    ;; The response body.
    (data (i32.const 64) "4 memories of 63 pages")
    ;; The host's allocations (the request) start here and only go up.
    (global $heap (mut i32) (i32.const 4096))

    ;; realloc(old-ptr, old-size, align, new-size) -> ptr: a bump allocator that grows
    ;; the memory when it runs out.
    (func (export "realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32)
      (local $end i32)
      (local.set $ptr
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (global.set $heap (local.get $end))
      (block $fits
        (br_if $fits (i32.le_u (local.get $end) (i32.shl (memory.size) (i32.const 16))))
        (br_if $fits
          (i32.ne
            (memory.grow
              (i32.add
                (i32.shr_u
                  (i32.sub (local.get $end) (i32.shl (memory.size) (i32.const 16)))
                  (i32.const 16))
                (i32.const 1)))
            (i32.const -1)))
        unreachable)
      (local.get $ptr))

    ;; A refused `memory.grow` (-1) is a bug here: trap.
    (func $grown (param i32)
      (if (i32.eq (local.get 0) (i32.const -1))
        (then unreachable)))

    ;; handle(req, caller) -> result<http-response, error>, all behind pointers.
    (func (export "handle") (param i32) (result i32)
      (call $grown (call $grow_a))
      (call $grown (call $grow_b))
      (call $grown (call $grow_c))
      (call $grown (memory.grow (i32.const 62)))
      ;; At 0: ok (0), then the http-response at 4: status 200, no headers, the body.
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store16 (i32.const 4) (i32.const 200))
      (i32.store (i32.const 8) (i32.const 0))
      (i32.store (i32.const 12) (i32.const 0))
      (i32.store (i32.const 16) (i32.const 64))
      (i32.store (i32.const 20) (i32.const 22))
      (i32.const 0)))

  (core instance $a (instantiate $grower))
  (core instance $b (instantiate $grower))
  (core instance $c (instantiate $grower))
  ;; more growers here
  (core instance $m (instantiate $main
    (with "a" (instance $a))
    (with "b" (instance $b))
    (with "c" (instance $c))))

  ;; The types of wit/types.wit that `handle` uses, exported by name with it.
  (type $headers (list (tuple string string)))
  (type $http-request (record
    (field "method" string)
    (field "path" string)
    (field "query" string)
    (field "headers" $headers)
    (field "body" (list u8))))
  (type $http-response (record
    (field "status" u16)
    (field "headers" $headers)
    (field "body" (list u8))))
  (type $identity (record
    (field "user-id" string)
    (field "username" string)
    (field "roles" (list string))))
  (type $error (variant
    (case "invalid" string)
    (case "denied" string)
    (case "not-found" string)
    (case "unavailable" string)
    (case "upstream" string)
    (case "timeout" string)
    (case "limit-exceeded" string)
    (case "internal" string)))
  (type $handle-type (func
    (param "req" $http-request)
    (param "caller" (option $identity))
    (result (result $http-response (error $error)))))

  (func $handle (type $handle-type)
    (canon lift (core func $m "handle")
      (memory $m "memory")
      (realloc (func $m "realloc"))))

  (instance $handler
    (export "http-request" (type $http-request))
    (export "http-response" (type $http-response))
    (export "identity" (type $identity))
    (export "error" (type $error))
    (export "handle" (func $handle)))
  (export "plinth:plugin/http-handler@0.1.0" (instance $handler)))
