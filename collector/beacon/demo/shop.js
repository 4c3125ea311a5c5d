// The demo shop's own page code: a catalog, a cart in localStorage, and the
// calls to the shoptrail beacon a real shop would make. (The beacon itself
// reads no form field; this page code does, as a shop's own code would.)
;(function () {
  'use strict'
  var CURRENCY = 'USD'
  var CATALOG = [
    { id: 'lm358', sku: 'TI-LM358DR', name: 'LM358 dual op-amp', brand: 'Texas Instruments', category: 'Amplifiers', price: 0.42, icon: 'OP', datasheet: 'https://www.ti.com/lit/ds/symlink/lm358.pdf' },
    { id: 'ne555', sku: 'TI-NE555P', name: 'NE555 timer', brand: 'Texas Instruments', category: 'Timers', price: 0.35, icon: '555', datasheet: 'https://www.ti.com/lit/ds/symlink/ne555.pdf' },
    { id: 'stm32f103', sku: 'ST-STM32F103C8T6', name: 'STM32F103 MCU', brand: 'STMicroelectronics', category: 'Microcontrollers', price: 3.9, icon: 'MCU', datasheet: 'https://www.st.com/resource/en/datasheet/stm32f103c8.pdf' },
    { id: 'r-kit', sku: 'YG-RK-600', name: 'Resistor kit, 600 pcs', brand: 'Yageo', category: 'Passives', price: 9.9, icon: 'Ω', datasheet: 'https://www.yageo.com/' },
    { id: 'usb-c', sku: 'GCT-USB4105', name: 'USB-C receptacle', brand: 'GCT', category: 'Connectors', price: 0.78, icon: 'USB', datasheet: 'https://gct.co/connector/usb4105' },
    { id: 'ldo-3v3', sku: 'DI-AP2112K-3.3', name: 'AP2112 3.3 V LDO', brand: 'Diodes Inc.', category: 'Power', price: 0.29, icon: 'LDO', datasheet: 'https://www.diodes.com/assets/Datasheets/AP2112.pdf' }
  ]

  var $ = function (sel) {
    return document.querySelector(sel)
  }
  var params = new URLSearchParams(location.search)
  var find = function (id) {
    return CATALOG.filter(function (p) {
      return p.id === id
    })[0]
  }
  var money = function (n) {
    return '$' + n.toFixed(2)
  }
  var esc = function (s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]
    })
  }
  var load = function (k, d) {
    try {
      return JSON.parse(localStorage.getItem(k)) || d
    } catch (e) {
      return d
    }
  }
  var cart = load('demo_cart', [])
  var saveCart = function () {
    localStorage.setItem('demo_cart', JSON.stringify(cart))
  }
  var cartId = load('demo_cart_id', null) || 'cart-' + Math.random().toString(36).slice(2, 10)
  localStorage.setItem('demo_cart_id', JSON.stringify(cartId))

  // product is a Segment e-commerce product object.
  var product = function (p, extra) {
    var o = { product_id: p.id, sku: p.sku, name: p.name, brand: p.brand, category: p.category, price: p.price, currency: CURRENCY, url: location.origin + location.pathname.replace(/[^/]*$/, '') + 'product.html?id=' + p.id }
    for (var k in extra) o[k] = extra[k]
    return o
  }
  var lines = function () {
    return cart.map(function (l, i) {
      return product(find(l.id), { quantity: l.qty, position: i + 1 })
    })
  }
  var total = function () {
    return cart.reduce(function (s, l) {
      return s + find(l.id).price * l.qty
    }, 0)
  }

  var header = function () {
    var n = cart.reduce(function (s, l) {
      return s + l.qty
    }, 0)
    $('header').innerHTML =
      '<a class="logo" href="index.html"><b>◆</b> PartsHub</a><nav><a href="products.html">All parts</a>' +
      '<a href="products.html?cat=Microcontrollers">MCUs</a><a href="account.html">Account</a>' +
      '<a id="cartlink" href="cart.html">Cart (' + n + ')</a></nav>' +
      '<form action="products.html"><input name="q" placeholder="Search parts…" aria-label="Search"><button class="btn">Search</button></form>'
  }

  var card = function (p, i, list) {
    return (
      '<a class="card" data-product="' + p.id + '" data-position="' + (i + 1) + '" data-list="' + list + '" href="product.html?id=' + p.id + '">' +
      '<span class="pic">' + p.icon + '</span><b>' + esc(p.name) + '</b><span class="muted">' + esc(p.brand) + ' · ' + esc(p.sku) +
      '</span><span class="price">' + money(p.price) + '</span></a>'
    )
  }
  // Product clicks in lists.
  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('[data-product]')
    if (a) shoptrail.productClicked(product(find(a.dataset.product), { position: +a.dataset.position, list_id: a.dataset.list }))
  })

  var pages = {
    home: function () {
      $('#featured').innerHTML = CATALOG.slice(0, 4).map(function (p, i) {
        return card(p, i, 'home_featured')
      }).join('')
    },
    products: function () {
      var q = (params.get('q') || '').trim()
      var cat = params.get('cat')
      var hits = CATALOG.filter(function (p) {
        return (!cat || p.category === cat) && (!q || (p.name + ' ' + p.sku + ' ' + p.brand).toLowerCase().indexOf(q.toLowerCase()) >= 0)
      })
      $('h1').textContent = q ? 'Results for “' + q + '”' : cat || 'All parts'
      $('#list').innerHTML = hits.map(function (p, i) {
        return card(p, i, q ? 'search' : cat || 'all')
      }).join('') || '<p class="muted">Nothing found.</p>'
      if (q) shoptrail.productsSearched({ query: q })
      shoptrail.productListViewed({ list_id: q ? 'search' : cat || 'all', category: cat || undefined, products: hits.map(function (p, i) {
        return product(p, { position: i + 1 })
      }) })
    },
    product: function () {
      var p = find(params.get('id')) || CATALOG[0]
      document.title = p.name + ' – PartsHub'
      $('#detail').innerHTML =
        '<span class="pic">' + p.icon + '</span><div><h1>' + esc(p.name) + '</h1><p class="muted">' + esc(p.brand) + ' · SKU ' + esc(p.sku) + ' · ' + esc(p.category) + '</p>' +
        '<p class="price">' + money(p.price) + ' <span class="muted">per unit</span></p>' +
        '<div class="row"><label>Quantity <input id="qty" type="number" min="1" value="10" style="width:5em"></label>' +
        '<button class="btn" id="add">Add to cart</button><button class="btn alt" id="wish">♡ Favorite</button></div>' +
        '<div class="row"><button class="btn alt" id="inquiry">Contact sales for volume pricing</button>' +
        '<a id="datasheet" href="' + p.datasheet + '">Datasheet ↗</a></div><p id="note" class="muted"></p></div>'
      shoptrail.productViewed(product(p))
      $('#add').onclick = function () {
        var qty = Math.max(1, parseInt($('#qty').value, 10) || 1)
        var line = cart.filter(function (l) {
          return l.id === p.id
        })[0]
        if (line) line.qty += qty
        else cart.push({ id: p.id, qty: qty })
        saveCart()
        header()
        shoptrail.productAdded(product(p, { cart_id: cartId, quantity: qty }))
        $('#note').innerHTML = 'Added ' + qty + ' to your cart. <a id="tocart" href="cart.html">View cart →</a>'
      }
      $('#wish').onclick = function () {
        shoptrail.productAddedToWishlist(product(p, { wishlist_id: 'favorites' }))
        $('#note').textContent = 'Saved to your favorites.'
      }
      $('#inquiry').onclick = function () {
        shoptrail.inquiryStarted({ channel: 'contact_sales', product_id: p.id, sku: p.sku })
        $('#note').textContent = 'A sales engineer will contact you within one business day.'
      }
    },
    cart: function () {
      var render = function () {
        $('#lines').innerHTML = cart.length
          ? cart.map(function (l, i) {
              var p = find(l.id)
              return '<tr><td>' + p.icon + ' ' + esc(p.name) + '</td><td>' + l.qty + '</td><td>' + money(p.price * l.qty) + '</td><td><button class="btn ghost" data-remove="' + i + '">Remove</button></td></tr>'
            }).join('') + '<tr><th colspan="2">Total</th><th colspan="2">' + money(total()) + '</th></tr>'
          : '<tr><td class="muted">Your cart is empty.</td></tr>'
        $('#checkout').style.display = cart.length ? '' : 'none'
      }
      render()
      shoptrail.cartViewed({ cart_id: cartId, products: lines() })
      $('#lines').onclick = function (e) {
        var i = e.target.dataset && e.target.dataset.remove
        if (i === undefined) return
        var l = cart.splice(+i, 1)[0]
        saveCart()
        header()
        render()
        shoptrail.productRemoved(product(find(l.id), { cart_id: cartId, quantity: l.qty }))
      }
    },
    checkout: function () {
      var orderId = 'o-' + Date.now().toString(36)
      shoptrail.checkoutStarted({ order_id: orderId, value: total(), revenue: total(), currency: CURRENCY, products: lines() })
      $('#sum').textContent = cart.length + ' line(s), ' + money(total())
      $('#order').onsubmit = function (e) {
        e.preventDefault()
        var f = e.target.elements
        var email = f.email.value.trim().toLowerCase()
        var customer = 'c-' + email.replace(/[^a-z0-9]/g, '-')
        shoptrail.identify(customer, { company: f.company.value, customerType: f.type.value, role: f.role.value })
        shoptrail.checkoutStepCompleted({ checkout_id: orderId, step: 1, shipping_method: f.shipping.value, payment_method: f.payment.value })
        var shipping = f.shipping.value === 'express' ? 25 : 8
        localStorage.setItem('demo_order', JSON.stringify({ order_id: orderId, shipping: shipping, products: lines(), subtotal: total() }))
        location.href = 'thanks.html?order=' + encodeURIComponent(orderId)
      }
    },
    thanks: function () {
      var o = load('demo_order', null)
      if (!o || o.order_id !== params.get('order')) {
        $('#msg').textContent = 'No order to show.'
        return
      }
      $('#oid').textContent = o.order_id
      shoptrail.orderCompleted({ order_id: o.order_id, checkout_id: o.order_id, subtotal: o.subtotal, shipping: o.shipping, tax: 0, total: o.subtotal + o.shipping, revenue: o.subtotal, currency: CURRENCY, products: o.products })
      localStorage.removeItem('demo_order')
      cart = []
      saveCart()
      header()
    },
    account: function () {
      var submit = function (form, signup) {
        form.onsubmit = function (e) {
          e.preventDefault()
          var f = e.target.elements
          var customer = 'c-' + f.email.value.trim().toLowerCase().replace(/[^a-z0-9]/g, '-')
          var traits = signup ? { company: f.company.value, industry: f.industry.value, customerType: f.type.value, role: f.role.value, level: 'new' } : {}
          shoptrail.identify(customer, traits)
          if (signup) shoptrail.signedUp({ method: 'email', customerType: f.type.value })
          else shoptrail.loggedIn({ method: 'email' })
          $('#acct').textContent = (signup ? 'Welcome, ' : 'Signed in as ') + customer
        }
      }
      submit($('#signup'), true)
      submit($('#login'), false)
      $('#logout').onclick = function () {
        shoptrail.reset()
        $('#acct').textContent = 'Signed out.'
      }
    }
  }

  header()
  pages[document.body.dataset.page]()
})()
