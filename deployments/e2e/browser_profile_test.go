package e2e

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wechat-relay/wechat-relay/storage/testenv/chromium"
)

// Client profiles in the real browser, against a relay on the real
// ClickHouse and Redis: a supervisor gives the account its tags, the
// agent names a client and tags them in the thread's dialog, and both
// see the name and the tags in the inbox, the supervisor by filtering
// on a tag; the client unfollows and follows again and keeps the
// profile.
func TestBrowserClientProfile(t *testing.T) {
	chromium.Need(t)
	r, acct := browserRelay(t)
	browser := chromium.Start(t, 1440, 900)

	c1, c2 := newClient(t, acct), newClient(t, acct)
	conv1, conv2 := "acme:"+c1.OpenID, "acme:"+c2.OpenID
	clientSays(t, c1, "您好，我想了解一下理财产品。")
	clientSays(t, c2, "Hello, is the branch open on Saturday?")

	// The supervisor gives the account two tags, in the profile dialog
	// of a conversation.
	sup := openPage(t, browser, "sup", r.sys.URL()+"/")
	sup.signIn("sup", browserPasswords["sup"])
	sup.until("both conversations", convItem(conv1)+` !== null && `+convItem(conv2)+` !== null`)
	sup.do("open the first", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv1+`"] a`)))
	sup.until("the edit button", `!document.getElementById("act-profile").hidden`)
	sup.do("open the profile dialog", chromedp.Click(chromedp.ID("act-profile")))
	sup.until("the dialog, with the tag form", `document.getElementById("dlg-profile").open && !document.getElementById("profile-tag-manage").hidden`)
	for _, tag := range []string{"高净值", "VIP"} {
		sup.do("add a tag",
			chromedp.SendKeys(chromedp.ID("profile-new-tag"), tag),
			chromedp.Click(chromedp.ID("profile-add-tag")))
		sup.until("the tag offered", `[...document.querySelectorAll("#profile-tags input")].some(n => n.value === `+js(tag)+`)`)
	}
	sup.do("close the dialog without saving", chromedp.Click(chromedp.ID("profile-cancel")))
	sup.until("closed", `!document.getElementById("dlg-profile").open`)

	// Alice names the client and tags them.
	alice := openPage(t, browser, "alice", r.sys.URL()+"/")
	alice.signIn("alice", browserPasswords["alice"])
	alice.until("the conversation listed", convItem(conv1)+` !== null`)
	alice.do("open it", chromedp.Click(chromedp.CSS(`#conv-list li[data-conv="`+conv1+`"] a`)))
	alice.until("the edit button", `!document.getElementById("act-profile").hidden`)
	alice.do("open the profile dialog", chromedp.Click(chromedp.ID("act-profile")))
	alice.until("the account's tags offered, no tag form for an agent",
		`document.querySelectorAll("#profile-tags input").length === 2 && document.getElementById("profile-tag-manage").hidden`)
	alice.do("fill in the profile",
		chromedp.SendKeys(chromedp.ID("profile-name"), "王伟"),
		chromedp.SendKeys(chromedp.ID("profile-remark"), "老客户 · 稳健型"),
		chromedp.SendKeys(chromedp.ID("profile-note"), "喜欢上午联系。"),
		chromedp.Click(chromedp.CSS(`#profile-tags input[value="高净值"]`)),
		chromedp.Click(chromedp.CSS(`#profile-tags input[value="VIP"]`)),
		chromedp.Click(chromedp.ID("profile-submit")))
	alice.until("saved", `!document.getElementById("dlg-profile").open`)
	alice.until("the name and tags in the inbox",
		convItem(conv1)+`.querySelector(".ci-name").textContent === "王伟" && [...`+convItem(conv1)+`.querySelectorAll(".ci-tags .chip")].map(n => n.textContent).join(",") === "高净值,VIP"`)
	alice.until("the name, remark and tags in the thread header",
		`document.getElementById("conv-client").textContent === "王伟" && document.getElementById("conv-sub").textContent.startsWith("老客户 · 稳健型") && document.querySelectorAll("#conv-tags .chip").length === 2`)
	alice.until("the profile card", `document.getElementById("d-profile").textContent.includes("喜欢上午联系。") && document.getElementById("d-profile").textContent.includes("Version 1")`)
	alice.do("open the history", chromedp.Click(chromedp.CSS(`#d-profile-history-wrap summary`)))
	alice.until("one version, by Alice", `(n => n.children.length === 1 && n.textContent.includes("alice") && n.textContent.includes("王伟"))(document.getElementById("d-profile-history"))`)
	keepScreenshot(t, "console-profile.png", alice.shot("console-profile.png"))
	alice.do("typing in the finder", chromedp.SendKeys(chromedp.ID("filter-q"), "王伟"))
	alice.until("the finder finds the client by name", convItem(conv1)+` !== null && `+convItem(conv2)+` === null`)

	// The supervisor filters the live view by a tag: only that client,
	// with the name.
	sup.until("the tag filter", `!document.getElementById("tag-filters").hidden && [...document.getElementById("filter-tag").options].some(o => o.value === "VIP")`)
	sup.do("filter by VIP", chromedp.SetValue(chromedp.ID("filter-tag"), "VIP"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-tag").dispatchEvent(new Event("change"))`))
	sup.until("only the tagged client, named", convItem(conv1)+`?.querySelector(".ci-name").textContent === "王伟" && `+convItem(conv2)+` === null`)

	// In Chinese the profile card says so.
	alice.do("switch to Chinese", chromedp.Click(chromedp.ID("nav-lang")))
	alice.until("the card in Chinese", `document.querySelector("#d-profile-card h3").textContent === "客户资料" && document.getElementById("d-profile").textContent.includes("第 1 版")`)

	// The client unfollows and follows again: the same OpenID, the same
	// profile, nothing merged or lost.
	if _, err := c1.Unsubscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	clientSays(t, c1, "我又关注了。")
	alice.until("the new message in the open conversation", bubbleWith("我又关注了。"))
	alice.untilAsync("the profile kept, version 1, and in the inbox", `Promise.all([
		fetch("/api/clients/acme/`+c1.OpenID+`/profile").then(r => r.json()),
		fetch("/api/conversations").then(r => r.json())]).then(([p, inbox]) =>
		p.version === 1 && p.name === "王伟" && p.tags.join(",") === "高净值,VIP" &&
		inbox.conversations.find(c => c.conv === `+js(conv1)+`)?.profile?.name === "王伟")`)
}
