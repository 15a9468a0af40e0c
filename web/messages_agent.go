package web

// The agent pages' messages (attachments, retention explanation, customer
// lookup and consents, OpenID Connect sign-in, role changes), merged into
// the catalogue by newCatalogue; kept apart from messages.go so the pages
// of each audience add their own file.

var agentMessagesEN = map[string]string{
	"nav.customers": "Customers",

	"files.preview": "Preview", "files.attach": "Attach a file", "files.contact": "To the contact",
	"files.file": "File", "files.upload": "Upload", "files.with_contact": "Attach a file (optional)",
	"files.too_large":  "The file is larger than the limit of %d bytes.",
	"files.no_preview": "This type of file is not shown in the browser; download it instead.",

	"explain.why": "why", "case.explain.until_close": "the case closes",
	"case.explain.rule":    "Deciding rule: purpose %s, kept %s from %s, then %s.",
	"case.explain.version": "schedule version %d",
	"explain.hold_placed":  "placed %s by %s",
	"explain.held_note":    "Under legal hold:",

	"consents.change": "Change consents",
	"consents.note":   "Withdrawing a consent redacts the stored data it covered; this cannot be undone.",

	"lookup.title": "Find a customer", "lookup.submit": "Find", "lookup.name": "Name",
	"lookup.help":        "Exact e-mail address or phone number (letter case and phone punctuation do not matter).",
	"lookup.none":        "No customer has this e-mail address or phone number.",
	"lookup.too_long":    "The e-mail address or phone number is too long.",
	"lookup.unavailable": "Customer lookup is not configured on this server.",

	"flash.contact_file_added": "Contact and file added.", "flash.file_added": "File attached.",
	"flash.consents_changed": "Consents changed.", "flash.consents_unchanged": "Nothing changed.",

	"oidc.signin": "Sign in with your organisation's account", "oidc.or": "or with a user name and password",
	"oidc.failed":       "Sign-in with your organisation's account failed",
	"oidc.state":        "The sign-in did not start in this browser, or it took too long. Start again.",
	"oidc.nonce":        "The identity provider's answer does not belong to this sign-in. Start again.",
	"oidc.role":         "Your account has no casevault role. Ask an admin to give you one at the identity provider.",
	"oidc.provider":     "The identity provider did not answer as expected. Try again later.",
	"oidc.disabled":     "Your casevault account is disabled.",
	"oidc.denied":       "The identity provider refused the sign-in.",
	"oidc.again":        "Sign in again",
	"oidc.name_taken":   "A casevault user with your name is linked to another account.",
	"users.change_role": "Change role",
}

var agentMessagesZH = map[string]string{
	"nav.customers": "客户",

	"files.preview": "预览", "files.attach": "添加附件", "files.contact": "所属联系记录",
	"files.file": "文件", "files.upload": "上传", "files.with_contact": "添加附件（可选）",
	"files.too_large":  "文件超过 %d 字节的上限。",
	"files.no_preview": "此类文件不在浏览器中显示，请下载。",

	"explain.why": "原因", "case.explain.until_close": "案件关闭",
	"case.explain.rule":    "决定规则：用途 %s，自%[3]s起保留 %[2]s，之后%[4]s。",
	"case.explain.version": "保留计划第 %d 版",
	"explain.hold_placed":  "%s 由 %s 设立",
	"explain.held_note":    "处于法律保全中：",

	"consents.change": "修改同意",
	"consents.note":   "撤回同意会删除其所涵盖的已存数据，且无法撤销。",

	"lookup.title": "查找客户", "lookup.submit": "查找", "lookup.name": "姓名",
	"lookup.help":        "完整的电子邮件地址或电话号码（不区分大小写，忽略电话号码中的标点）。",
	"lookup.none":        "没有客户使用此电子邮件地址或电话号码。",
	"lookup.too_long":    "电子邮件地址或电话号码过长。",
	"lookup.unavailable": "此服务器未配置客户查找。",

	"flash.contact_file_added": "联系记录和附件已添加。", "flash.file_added": "附件已添加。",
	"flash.consents_changed": "同意已修改。", "flash.consents_unchanged": "没有修改。",

	"oidc.signin": "使用组织账户登录", "oidc.or": "或使用用户名和密码",
	"oidc.failed":       "使用组织账户登录失败",
	"oidc.state":        "登录不是在此浏览器中开始的，或耗时过长。请重新开始。",
	"oidc.nonce":        "身份提供方的回复不属于本次登录。请重新开始。",
	"oidc.role":         "您的账户没有 casevault 角色。请联系管理员在身份提供方为您分配角色。",
	"oidc.provider":     "身份提供方的回复不符合预期。请稍后再试。",
	"oidc.disabled":     "您的 casevault 账户已停用。",
	"oidc.denied":       "身份提供方拒绝了登录。",
	"oidc.again":        "重新登录",
	"oidc.name_taken":   "与您同名的 casevault 用户已关联到另一个账户。",
	"users.change_role": "修改角色",
}
