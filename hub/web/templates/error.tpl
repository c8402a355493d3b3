% rebase('base.tpl')
<section class="card narrow">
<h1>{{title}}</h1>
<p>{{_(message_key)}}</p>
<p><a href="/">{{_('nav.now')}}</a></p>
</section>
