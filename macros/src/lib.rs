//! The `#[cached]` attribute of [`redis-atomics`](https://docs.rs/redis-atomics):
//! use it through `redis_atomics::cached` (default feature `macros`).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, Meta, Pat, PathArguments, ReturnType,
    Token, Type,
};

/// Caches an `async fn` in Redis, keyed by its name and arguments.
///
/// The function's first parameter is the `&RedisService` (not part of the
/// key); every other parameter is a key argument, by its name, and must be
/// `Serialize`. The return type `T` (or `Result<T, E>`, whose `Err` is
/// never cached) must be `Serialize + DeserializeOwned`.
///
/// Options (all optional): `ttl = <seconds>` (integer or float),
/// `key_prefix = "…"`, `namespace = "…"`, `name = "…"` (the function part
/// of the key; defaults to the function's name), `skip_cache_if = path`
/// (a `fn(&T) -> bool`), `prevent_thundering_herd = bool` (default true),
/// `early_refresh = <beta>`, `lock_ttl = <seconds>`.
///
/// Also generates `NAME_invalidate(service, args…) -> Result<u64>` and
/// `NAME_invalidate_all(service) -> Result<u64>`.
///
/// ```text
/// #[redis_atomics::cached(ttl = 60, key_prefix = "v1")]
/// async fn user_name(service: &RedisService, id: u64) -> Option<String> {
///     db_lookup(id).await
/// }
/// ```
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    ttl: Option<Expr>,
    key_prefix: Option<Expr>,
    namespace: Option<Expr>,
    name: Option<Expr>,
    skip_cache_if: Option<Expr>,
    prevent_thundering_herd: Option<Expr>,
    early_refresh: Option<Expr>,
    lock_ttl: Option<Expr>,
}

fn parse_options(attr: Tokens) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut options = Options::default();
    for meta in metas {
        let Meta::NameValue(nv) = meta else {
            return Err(syn::Error::new_spanned(meta, "expected `name = value`"));
        };
        let name = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let slot = match name.as_str() {
            "ttl" => &mut options.ttl,
            "key_prefix" => &mut options.key_prefix,
            "namespace" => &mut options.namespace,
            "name" => &mut options.name,
            "skip_cache_if" => &mut options.skip_cache_if,
            "prevent_thundering_herd" => &mut options.prevent_thundering_herd,
            "early_refresh" => &mut options.early_refresh,
            "lock_ttl" => &mut options.lock_ttl,
            _ => {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    "unknown option; expected ttl, key_prefix, namespace, name, skip_cache_if, \
                     prevent_thundering_herd, early_refresh or lock_ttl",
                ));
            }
        };
        if slot.is_some() {
            return Err(syn::Error::new_spanned(&nv.path, "option given twice"));
        }
        *slot = Some(nv.value);
    }
    Ok(options)
}

/// `60` or `1.5` seconds as a `Duration` expression.
fn seconds(expr: &Expr) -> Tokens {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => quote!(::std::time::Duration::from_secs(#i)),
        other => quote!(::std::time::Duration::from_secs_f64((#other) as f64)),
    }
}

/// `T` of `Result<T, E>`, if the return type is a `Result`.
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

fn expand(attr: Tokens, item: Tokens) -> syn::Result<Tokens> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[cached] needs an async fn",
        ));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(syn::Error::new_spanned(
            sig,
            "#[cached] needs a return type to cache",
        ));
    };
    let mut inputs = sig.inputs.iter();
    let service = match inputs.next() {
        Some(FnArg::Typed(pt)) => match &*pt.pat {
            Pat::Ident(id) => id.ident.clone(),
            other => {
                return Err(syn::Error::new_spanned(other, "name the service parameter"));
            }
        },
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new_spanned(
                r,
                "#[cached] works on free functions whose first parameter is `&RedisService`",
            ));
        }
        None => {
            return Err(syn::Error::new_spanned(
                sig,
                "#[cached] needs a first parameter `service: &RedisService`",
            ));
        }
    };
    let mut arg_names = Vec::new();
    for input in inputs {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new_spanned(input, "unexpected receiver"));
        };
        match &*pt.pat {
            Pat::Ident(id) => arg_names.push(id.ident.clone()),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "#[cached] arguments must be plain names (they are part of the key)",
                ));
            }
        }
    }

    let vis = &func.vis;
    let attrs = &func.attrs;
    let ident = &sig.ident;
    let inner = format_ident!("__{}_uncached", ident);
    let invalidate = format_ident!("{}_invalidate", ident);
    let invalidate_all = format_ident!("{}_invalidate_all", ident);
    let cache_fn = format_ident!("__{}_cache", ident);
    let (value_ty, fallible) = match result_ok_type(ret) {
        Some(t) => (t.clone(), true),
        None => ((**ret).clone(), false),
    };
    let function_name = match &options.name {
        Some(name) => quote!(#name),
        None => {
            let s = syn::LitStr::new(&ident.unraw().to_string(), Span::call_site());
            quote!(#s)
        }
    };
    // The compute settings first, as one `ComputeOptions` that the
    // `CacheOptions` wraps, so that no setter undoes another.
    let mut compute = quote!(::redis_atomics::ComputeOptions::new());
    if let Some(ttl) = &options.ttl {
        let d = seconds(ttl);
        compute = quote!(#compute.ttl(#d));
    }
    if let Some(lock_ttl) = &options.lock_ttl {
        let d = seconds(lock_ttl);
        compute = quote!(#compute.lock_ttl(#d));
    }
    if let Some(on) = &options.prevent_thundering_herd {
        compute = quote!(#compute.prevent_thundering_herd(#on));
    }
    if let Some(beta) = &options.early_refresh {
        compute = quote!(#compute.early_refresh((#beta) as f64));
    }
    let mut opts = quote!(::redis_atomics::CacheOptions::<#value_ty>::from(#compute));
    if let Some(p) = &options.key_prefix {
        opts = quote!(#opts.key_prefix(#p));
    }
    if let Some(ns) = &options.namespace {
        opts = quote!(#opts.namespace(#ns));
    }
    if let Some(skip) = &options.skip_cache_if {
        opts = quote!(#opts.skip_cache_if(#skip));
    }

    let mut inner_sig = sig.clone();
    inner_sig.ident = inner.clone();
    let call_args: Vec<_> = std::iter::once(service.clone())
        .chain(arg_names.iter().cloned())
        .collect();
    let arg_strs: Vec<_> = arg_names
        .iter()
        .map(|a| syn::LitStr::new(&a.unraw().to_string(), a.span()))
        .collect();
    let build_args = quote! {
        ::redis_atomics::Args::new() #( .arg(#arg_strs, &#arg_names) )*
    };
    let body = &func.block;
    let invoke = if fallible {
        quote!(__cache.call_result(&__args, #inner(#(#call_args),*)).await)
    } else {
        quote!(__cache.call(&__args, #inner(#(#call_args),*)).await)
    };
    let mut outer_sig = sig.clone();
    // Parameters are only read to build the key and forwarded: drop `mut`.
    for input in outer_sig.inputs.iter_mut() {
        if let FnArg::Typed(pt) = input {
            if let Pat::Ident(id) = &mut *pt.pat {
                id.mutability = None;
            }
        }
    }
    let mut inv_sig = outer_sig.clone();
    inv_sig.ident = invalidate.clone();
    inv_sig.output = syn::parse_quote!(-> ::redis_atomics::Result<u64>);
    let service_param = outer_sig.inputs.first().cloned();
    let service_ty = match &service_param {
        Some(FnArg::Typed(pt)) => pt.ty.clone(),
        _ => syn::parse_quote!(&::redis_atomics::RedisService),
    };
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;

    Ok(quote! {
        #(#attrs)*
        #vis #outer_sig {
            #[allow(clippy::too_many_arguments)]
            #inner_sig #body
            let __cache = #cache_fn(&#service);
            let __args = #build_args;
            #invoke
        }

        #[doc(hidden)]
        #vis fn #cache_fn(service: &::redis_atomics::RedisService) -> ::redis_atomics::Cached<#value_ty> {
            service.cache::<#value_ty>(#function_name, #opts)
        }

        /// Deletes the cached result of this call (generated by `#[cached]`).
        #[allow(clippy::too_many_arguments)]
        #vis #inv_sig {
            let __args = #build_args;
            #cache_fn(&#service).invalidate(&__args).await
        }

        /// Deletes every cached result of this function (generated by `#[cached]`).
        #vis async fn #invalidate_all #generics (#service: #service_ty) -> ::redis_atomics::Result<u64> #where_clause {
            #cache_fn(&#service).invalidate_all().await
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(attr: Tokens, item: Tokens) -> String {
        match expand(attr, item) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rejects_what_it_cannot_cache() {
        let svc = quote!(service: &RedisService);
        assert!(err(quote!(), quote!(fn f(#svc) -> u32 { 1 })).contains("async fn"));
        assert!(err(quote!(), quote!(async fn f(#svc) { })).contains("return type"));
        assert!(
            err(
                quote!(),
                quote!(
                    async fn f() -> u32 {
                        1
                    }
                )
            )
            .contains("first parameter")
        );
        assert!(
            err(
                quote!(),
                quote!(
                    async fn f(&self) -> u32 {
                        1
                    }
                )
            )
            .contains("free functions")
        );
        assert!(
            err(
                quote!(),
                quote!(async fn f(#svc, (a, b): (u8, u8)) -> u32 { 1 })
            )
            .contains("plain names")
        );
        assert!(
            err(
                quote!(ttl = 1, bogus = 2),
                quote!(async fn f(#svc) -> u32 { 1 })
            )
            .contains("unknown option")
        );
        assert!(
            err(
                quote!(ttl = 1, ttl = 2),
                quote!(async fn f(#svc) -> u32 { 1 })
            )
            .contains("twice")
        );
        assert!(err(quote!(ttl), quote!(async fn f(#svc) -> u32 { 1 })).contains("name = value"));
    }

    #[test]
    fn expands_plain_and_result_functions() {
        let out = expand(
            quote!(ttl = 60, key_prefix = "v1"),
            quote!(
                pub async fn user(service: &RedisService, id: u64) -> Option<String> {
                    None
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("pub async fn user_invalidate"));
        assert!(out.contains("pub async fn user_invalidate_all"));
        assert!(out.contains(". call (& __args"));
        assert!(out.contains("from_secs (60)"));
        let out = expand(
            quote!(ttl = 0.5),
            quote!(
                async fn load(service: &RedisService, mut n: u32) -> Result<Vec<u8>, String> {
                    Ok(vec![])
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains(". call_result (& __args"));
        assert!(out.contains("Cached < Vec < u8 > >"));
        assert!(out.contains("from_secs_f64"));
    }

    #[test]
    fn compute_settings_are_one_compute_options() {
        let out = expand(
            quote!(
                prevent_thundering_herd = false,
                lock_ttl = 2,
                ttl = 60,
                early_refresh = 1,
                key_prefix = "v1"
            ),
            quote!(
                async fn f(service: &RedisService) -> u32 {
                    1
                }
            ),
        )
        .unwrap()
        .to_string();
        let compute = ":: redis_atomics :: ComputeOptions :: new () \
             . ttl (:: std :: time :: Duration :: from_secs (60)) \
             . lock_ttl (:: std :: time :: Duration :: from_secs (2)) \
             . prevent_thundering_herd (false) \
             . early_refresh ((1) as f64)";
        let cache = format!("CacheOptions :: < u32 > :: from ({compute}) . key_prefix (\"v1\")");
        assert!(out.contains(&cache), "{out}");
    }
}
