package i18n

// Keys of the catalogue. A comment lists the fmt arguments of a text.
const (
	// Consent dialog (the rest of the dialog's wording is built by pinentry).
	ConsentOperation Key = "consent.operation"

	// Tray: status line (and tooltip).
	TrayStatusNoService   Key = "tray.status.no-service"
	TrayStatusBusy        Key = "tray.status.busy" // operation
	TrayStatusNoReader    Key = "tray.status.no-reader"
	TrayStatusNoCard      Key = "tray.status.no-card"
	TrayStatusUnsupported Key = "tray.status.unsupported"
	TrayStatusPINBlocked  Key = "tray.status.pin-blocked"
	TrayStatusPUKBlocked  Key = "tray.status.puk-blocked"
	TrayStatusReady       Key = "tray.status.ready" // generation
	TrayInProgress        Key = "tray.in-progress"  // item label

	// Tray: menu items.
	TraySites          Key = "tray.sites"
	TraySitePolicy     Key = "tray.site.policy"  // origin
	TraySiteConfig     Key = "tray.site.config"  // origin
	TraySiteRevoke     Key = "tray.site.revoke"  // origin
	TraySiteOnce       Key = "tray.site.once"    // origin
	TraySiteDenied     Key = "tray.site.denied"  // origin
	TraySitesMore      Key = "tray.sites.more"   // count
	TraySitesNone      Key = "tray.sites.none"   //
	TraySitesLocked    Key = "tray.sites.locked" //
	TraySiteRevoked    Key = "tray.site.revoked" // origin
	TrayActivity       Key = "tray.activity"
	TrayActivityEntry  Key = "tray.activity.entry" // time, operation, origin, result
	TrayActivityLocal  Key = "tray.activity.local"
	TrayActivityNone   Key = "tray.activity.none"
	TrayExportCSV      Key = "tray.export.csv"
	TrayExportJSON     Key = "tray.export.json"
	TrayExported       Key = "tray.exported"     // path
	TrayExportFailed   Key = "tray.export.error" // error
	TrayChangePIN      Key = "tray.change-pin"
	TrayUnblockPIN     Key = "tray.unblock-pin"
	TrayDoctor         Key = "tray.doctor"
	TrayDoctorRunning  Key = "tray.doctor.running"
	TrayDoctorFailed   Key = "tray.doctor.error" // error
	TrayOpenLogs       Key = "tray.open-logs"
	TrayOpenFailed     Key = "tray.open.error" // path, error
	TrayAbout          Key = "tray.about"      // version
	TrayAboutText      Key = "tray.about.text" // version
	TrayQuit           Key = "tray.quit"
	TrayHeadless       Key = "tray.headless"        // reason
	TrayNoDisplay      Key = "tray.reason.display"  //
	TrayHeadlessFlag   Key = "tray.reason.flag"     //
	TrayNoTrayBuild    Key = "tray.reason.notray"   //
	TrayActionDisabled Key = "tray.action.disabled" //

	// Operations and results (tray activity, ledger export).
	OpAuthenticate Key = "op.authenticate"
	OpSign         Key = "op.sign"
	OpReadCard     Key = "op.read-card"
	OpChangePIN    Key = "op.change-pin"
	OpUnblockPIN   Key = "op.unblock-pin"
	OpUnknown      Key = "op.unknown"
	ResultOK       Key = "result.ok"
	ResultFailed   Key = "result.failed" // code

	// PIN management (tray flows): results and errors.
	PINChanged      Key = "pin.changed"
	PINUnblocked    Key = "pin.unblocked"
	PINMismatch     Key = "pin.mismatch"
	PINMismatchStop Key = "pin.mismatch.stop"
	PINWrong        Key = "pin.wrong" // tries left
	PINWrongLast    Key = "pin.wrong.last"
	PINBlockedNow   Key = "pin.blocked.now"
	PINBlocked      Key = "pin.blocked"
	PUKWrong        Key = "puk.wrong" // tries left
	PUKWrongLast    Key = "puk.wrong.last"
	PUKBlockedNow   Key = "puk.blocked.now"
	PUKBlocked      Key = "puk.blocked"
	PINFormat       Key = "pin.format"
	PINTimeout      Key = "pin.timeout"
	PINCancelled    Key = "pin.cancelled"
	PINBusy         Key = "pin.busy"
	PINNoDialog     Key = "pin.no-dialog"
	PINCardRemoved  Key = "pin.card-removed"
	PINCardChanged  Key = "pin.card-changed"
	PINNoCard       Key = "pin.no-card"
	PINNoReader     Key = "pin.no-reader"
	PINNoService    Key = "pin.no-service"
	PINUnsupported  Key = "pin.unsupported"
	PINNotPermitted Key = "pin.not-permitted"
	PINCardError    Key = "pin.card-error"

	// Diagnostics (cpsagent doctor).
	DoctorHeader           Key = "doctor.header"
	DoctorSummary          Key = "doctor.summary"
	DoctorOK               Key = "doctor.ok"
	DoctorWarn             Key = "doctor.warn"
	DoctorFail             Key = "doctor.fail"
	DoctorSkip             Key = "doctor.skip"
	DoctorNotChecked       Key = "doctor.not-checked"
	DoctorPCSCTitle        Key = "doctor.pcsc.title"
	DoctorPCSCOK           Key = "doctor.pcsc.ok"
	DoctorPCSCDown         Key = "doctor.pcsc.down"
	DoctorPCSCError        Key = "doctor.pcsc.error"
	DoctorPCSCHintLinux    Key = "doctor.pcsc.hint.linux"
	DoctorPCSCHintWindows  Key = "doctor.pcsc.hint.windows"
	DoctorPCSCHintMac      Key = "doctor.pcsc.hint.mac"
	DoctorNeedsPCSC        Key = "doctor.needs-pcsc"
	DoctorReadersTitle     Key = "doctor.readers.title"
	DoctorReadersOK        Key = "doctor.readers.ok"
	DoctorNoReader         Key = "doctor.readers.none"
	DoctorNoReaderHint     Key = "doctor.readers.none.hint"
	DoctorCardsTitle       Key = "doctor.cards.title"
	DoctorCardsOK          Key = "doctor.cards.ok"
	DoctorNoCard           Key = "doctor.cards.none"
	DoctorNoCardHint       Key = "doctor.cards.none.hint"
	DoctorUnsupported      Key = "doctor.cards.unsupported"
	DoctorUnsupportedHint  Key = "doctor.cards.unsupported.hint"
	DoctorUnsupportedFact  Key = "doctor.cards.unsupported.fact"
	DoctorSeveralCards     Key = "doctor.cards.several"
	DoctorSeveralCardsHint Key = "doctor.cards.several.hint"
	DoctorExclusiveTitle   Key = "doctor.exclusive.title"
	DoctorExclusiveOK      Key = "doctor.exclusive.ok"
	DoctorExclusiveHeld    Key = "doctor.exclusive.held"
	DoctorExclusiveBusy    Key = "doctor.exclusive.busy"
	DoctorExclusiveHint    Key = "doctor.exclusive.hint"
	DoctorNoCardToProbe    Key = "doctor.exclusive.no-card"
	DoctorAgentTitle       Key = "doctor.agent.title"
	DoctorAgentOK          Key = "doctor.agent.ok"
	DoctorAgentNoCA        Key = "doctor.agent.no-ca"
	DoctorNoCAHint         Key = "doctor.agent.no-ca.hint"
	DoctorAgentDown        Key = "doctor.agent.down"
	DoctorAgentDownHint    Key = "doctor.agent.down.hint"
	DoctorAgentError       Key = "doctor.agent.error"
	DoctorAgentOtherCA     Key = "doctor.agent.other-ca"
	DoctorAgentOtherCAHint Key = "doctor.agent.other-ca.hint"
	DoctorPortSquatted     Key = "doctor.agent.squatted"
	DoctorPortSquattedHint Key = "doctor.agent.squatted.hint"
	DoctorPortOwnerFact    Key = "doctor.agent.owner"
	DoctorTLSTitle         Key = "doctor.tls.title"
	DoctorTLSOK            Key = "doctor.tls.ok"
	DoctorTLSTrustHint     Key = "doctor.tls.trust"
	DoctorTLSMissing       Key = "doctor.tls.missing"
	DoctorTLSMissingHint   Key = "doctor.tls.missing.hint"
	DoctorTLSUnreadable    Key = "doctor.tls.unreadable"
	DoctorTLSExpired       Key = "doctor.tls.expired"
	DoctorTLSInvalid       Key = "doctor.tls.invalid"
	DoctorTLSSoon          Key = "doctor.tls.soon"
	DoctorTLSRenewHint     Key = "doctor.tls.renew"
	DoctorConfigTitle      Key = "doctor.config.title"
	DoctorConfigOK         Key = "doctor.config.ok"
	DoctorConfigNoOrigin   Key = "doctor.config.no-origin"
	DoctorConfigError      Key = "doctor.config.error"
	DoctorConfigHint       Key = "doctor.config.hint"
	DoctorQuirksTitle      Key = "doctor.quirks.title"
	DoctorQuirksShipped    Key = "doctor.quirks.shipped"
	DoctorQuirksChanged    Key = "doctor.quirks.changed"
	DoctorQuirksBad        Key = "doctor.quirks.bad"
	DoctorQuirksBadHint    Key = "doctor.quirks.bad.hint"
	DoctorPolicyTitle      Key = "doctor.policy.title"
	DoctorPolicyNone       Key = "doctor.policy.none"
	DoctorPolicyOK         Key = "doctor.policy.ok"
	DoctorPolicyLocked     Key = "doctor.policy.locked"
	DoctorPolicyBad        Key = "doctor.policy.bad"
	DoctorPolicyBadHint    Key = "doctor.policy.bad.hint"
	DoctorPinentryTitle    Key = "doctor.pinentry.title"
	DoctorPinentryOK       Key = "doctor.pinentry.ok"
	DoctorPinentryMissing  Key = "doctor.pinentry.missing"
	DoctorPinentryHint     Key = "doctor.pinentry.hint"
	DoctorBrowserTitle     Key = "doctor.browser.title"
	DoctorBrowserOK        Key = "doctor.browser.ok"      // origins, browsers
	DoctorBrowserMissing   Key = "doctor.browser.missing" // origins
	DoctorBrowserHint      Key = "doctor.browser.hint"
	DoctorBrowserNone      Key = "doctor.browser.none"
	DoctorBrowserNoOrigin  Key = "doctor.browser.no-origin"
	DoctorBrowserOtherOS   Key = "doctor.browser.other-os"
	DoctorBundleWritten    Key = "doctor.bundle.written"
)

var catalogue = map[Key]msg{
	ConsentOperation: {
		FR: "utiliser votre carte CPS (lecture de l'identité, authentification, signature)",
		EN: "use your CPS card (reading your identity, authentication, signature)",
	},

	TrayStatusNoService:   {FR: "Service carte à puce injoignable", EN: "Smart-card service unreachable"},
	TrayStatusBusy:        {FR: "Opération en cours : %s", EN: "Operation in progress: %s"},
	TrayStatusNoReader:    {FR: "Aucun lecteur de carte", EN: "No card reader"},
	TrayStatusNoCard:      {FR: "Aucune carte dans le lecteur", EN: "No card in the reader"},
	TrayStatusUnsupported: {FR: "Carte non reconnue (pas une carte CPS)", EN: "Card not recognised (not a CPS card)"},
	TrayStatusPINBlocked:  {FR: "Code porteur bloqué : débloquez-le avec le code de déblocage", EN: "PIN blocked: unblock it with the unblocking code"},
	TrayStatusPUKBlocked:  {FR: "Carte bloquée définitivement : demandez une nouvelle carte", EN: "Card blocked for good: ask for a new card"},
	TrayStatusReady:       {FR: "Carte %s prête", EN: "%s card ready"},
	TrayInProgress:        {FR: "%s (en cours)", EN: "%s (in progress)"},

	TraySites:          {FR: "Sites autorisés", EN: "Allowed sites"},
	TraySitePolicy:     {FR: "%s (administrateur)", EN: "%s (administrator)"},
	TraySiteConfig:     {FR: "%s (configuration)", EN: "%s (configuration)"},
	TraySiteRevoke:     {FR: "Retirer %s", EN: "Remove %s"},
	TraySiteOnce:       {FR: "%s (cette fois seulement)", EN: "%s (this time only)"},
	TraySiteDenied:     {FR: "%s (interdit par l'administrateur)", EN: "%s (forbidden by the administrator)"},
	TraySitesMore:      {FR: "… et %d autres", EN: "… and %d more"},
	TraySitesNone:      {FR: "Aucun site autorisé", EN: "No allowed site"},
	TraySitesLocked:    {FR: "Liste fixée par l'administrateur", EN: "List set by the administrator"},
	TraySiteRevoked:    {FR: "%s n'est plus autorisé", EN: "%s is no longer allowed"},
	TrayActivity:       {FR: "Activité récente", EN: "Recent activity"},
	TrayActivityEntry:  {FR: "%s · %s · %s · %s", EN: "%s · %s · %s · %s"},
	TrayActivityLocal:  {FR: "cet ordinateur", EN: "this computer"},
	TrayActivityNone:   {FR: "Aucune activité", EN: "No activity"},
	TrayExportCSV:      {FR: "Exporter le journal (CSV)", EN: "Export the activity log (CSV)"},
	TrayExportJSON:     {FR: "Exporter le journal (JSON)", EN: "Export the activity log (JSON)"},
	TrayExported:       {FR: "Journal exporté : %s", EN: "Activity log exported: %s"},
	TrayExportFailed:   {FR: "Échec de l'export : %v", EN: "Export failed: %v"},
	TrayChangePIN:      {FR: "Changer le code porteur…", EN: "Change the PIN…"},
	TrayUnblockPIN:     {FR: "Débloquer le code porteur…", EN: "Unblock the PIN…"},
	TrayDoctor:         {FR: "Diagnostic…", EN: "Diagnostics…"},
	TrayDoctorRunning:  {FR: "Diagnostic en cours…", EN: "Running diagnostics…"},
	TrayDoctorFailed:   {FR: "Le diagnostic a échoué : %v", EN: "Diagnostics failed: %v"},
	TrayOpenLogs:       {FR: "Ouvrir le dossier des journaux", EN: "Open the log folder"},
	TrayOpenFailed:     {FR: "Impossible d'ouvrir %s : %v", EN: "Cannot open %s: %v"},
	TrayAbout:          {FR: "À propos de cpsagent %s", EN: "About cpsagent %s"},
	TrayAboutText:      {FR: "cpsagent %s — agent local pour la carte CPS", EN: "cpsagent %s — local agent for the CPS card"},
	TrayQuit:           {FR: "Quitter", EN: "Quit"},
	TrayHeadless:       {FR: "cpsagent fonctionne sans icône de notification (%s)", EN: "cpsagent runs without a tray icon (%s)"},
	TrayNoDisplay:      {FR: "aucun affichage graphique : DISPLAY et WAYLAND_DISPLAY absents ou injoignables", EN: "no graphical display: DISPLAY and WAYLAND_DISPLAY unset or unreachable"},
	TrayHeadlessFlag:   {FR: "option --headless", EN: "--headless option"},
	TrayNoTrayBuild:    {FR: "version construite sans icône de notification", EN: "built without the tray icon"},
	TrayActionDisabled: {FR: "Action indisponible pour le moment", EN: "Action not available right now"},

	OpAuthenticate: {FR: "Authentification", EN: "Authentication"},
	OpSign:         {FR: "Signature", EN: "Signature"},
	OpReadCard:     {FR: "Lecture de l'identité", EN: "Identity read"},
	OpChangePIN:    {FR: "Changement du code porteur", EN: "PIN change"},
	OpUnblockPIN:   {FR: "Déblocage du code porteur", EN: "PIN unblock"},
	OpUnknown:      {FR: "Opération", EN: "Operation"},
	ResultOK:       {FR: "réussi", EN: "succeeded"},
	ResultFailed:   {FR: "échec (%s)", EN: "failed (%s)"},

	PINChanged:             {FR: "Votre code porteur a été changé. Utilisez désormais le nouveau code.", EN: "Your PIN has been changed. Use the new PIN from now on."},
	PINUnblocked:           {FR: "Votre code porteur est débloqué et remplacé par le nouveau code.", EN: "Your PIN is unblocked and replaced by the new PIN."},
	PINMismatch:            {FR: "Les deux saisies du nouveau code sont différentes. Recommencez.", EN: "The two entries of the new PIN differ. Try again."},
	PINMismatchStop:        {FR: "Les saisies du nouveau code ne correspondaient pas : rien n'a été changé sur la carte.", EN: "The new PIN entries did not match: nothing was changed on the card."},
	PINWrong:               {FR: "Code porteur incorrect. Il reste %d essais avant le blocage de la carte.", EN: "Wrong PIN. %d tries left before the card is blocked."},
	PINWrongLast:           {FR: "Code porteur incorrect. ATTENTION : il reste un seul essai avant le blocage de la carte.", EN: "Wrong PIN. WARNING: only one try left before the card is blocked."},
	PINBlockedNow:          {FR: "Code porteur incorrect : le code est maintenant bloqué. Débloquez-le avec votre code de déblocage (8 chiffres, reçu avec la carte).", EN: "Wrong PIN: the PIN is now blocked. Unblock it with your unblocking code (8 digits, sent with the card)."},
	PINBlocked:             {FR: "Le code porteur est bloqué. Débloquez-le avec votre code de déblocage (8 chiffres, reçu avec la carte).", EN: "The PIN is blocked. Unblock it with your unblocking code (8 digits, sent with the card)."},
	PUKWrong:               {FR: "Code de déblocage incorrect. Il reste %d essais.", EN: "Wrong unblocking code. %d tries left."},
	PUKWrongLast:           {FR: "Code de déblocage incorrect. ATTENTION : il reste un seul essai avant le blocage définitif de la carte.", EN: "Wrong unblocking code. WARNING: only one try left before the card is blocked for good."},
	PUKBlockedNow:          {FR: "Code de déblocage incorrect : la carte est maintenant bloquée définitivement. Demandez une nouvelle carte CPS (Agence du Numérique en Santé).", EN: "Wrong unblocking code: the card is now blocked for good. Ask for a new CPS card (Agence du Numérique en Santé)."},
	PUKBlocked:             {FR: "Le code de déblocage est bloqué : la carte ne peut plus être débloquée. Demandez une nouvelle carte CPS (Agence du Numérique en Santé).", EN: "The unblocking code is blocked: the card can no longer be unblocked. Ask for a new CPS card (Agence du Numérique en Santé)."},
	PINFormat:              {FR: "Format de code invalide (4 chiffres pour le code porteur, 8 pour le code de déblocage). Aucun essai n'a été consommé.", EN: "Invalid code format (4 digits for the PIN, 8 for the unblocking code). No try was used."},
	PINTimeout:             {FR: "Délai de saisie dépassé : rien n'a été changé sur la carte.", EN: "Entry timed out: nothing was changed on the card."},
	PINCancelled:           {FR: "Opération annulée : rien n'a été changé sur la carte.", EN: "Cancelled: nothing was changed on the card."},
	PINBusy:                {FR: "La carte ou une fenêtre de saisie est déjà utilisée. Réessayez dans un instant.", EN: "The card or a code dialog is already in use. Try again in a moment."},
	PINNoDialog:            {FR: "Impossible d'afficher la fenêtre de saisie du code (programme pinentry absent ou en échec). Lancez « cpsagent doctor ».", EN: "Cannot show the code dialog (pinentry program missing or failing). Run \"cpsagent doctor\"."},
	PINCardRemoved:         {FR: "La carte a été retirée pendant l'opération : rien n'a été changé. Réinsérez-la et recommencez.", EN: "The card was removed during the operation: nothing was changed. Insert it again and retry."},
	PINCardChanged:         {FR: "La carte a été remplacée par une autre pendant la saisie : opération refusée.", EN: "The card was replaced by another one during the entry: operation refused."},
	PINNoCard:              {FR: "Aucune carte dans le lecteur. Insérez votre carte CPS.", EN: "No card in the reader. Insert your CPS card."},
	PINNoReader:            {FR: "Aucun lecteur de carte détecté. Branchez le lecteur.", EN: "No card reader found. Plug in the reader."},
	PINNoService:           {FR: "Le service carte à puce (PC/SC) ne répond pas. Lancez « cpsagent doctor ».", EN: "The smart-card service (PC/SC) does not answer. Run \"cpsagent doctor\"."},
	PINUnsupported:         {FR: "Cette carte n'est pas une carte CPS prise en charge.", EN: "This card is not a supported CPS card."},
	PINNotPermitted:        {FR: "Opération impossible par cette interface de la carte (sans contact) : utilisez le lecteur à contact.", EN: "Operation not possible over this card interface (contactless): use the contact reader."},
	PINCardError:           {FR: "La carte a répondu de façon inattendue : rien n'a été changé. Lancez « cpsagent doctor » si cela se reproduit.", EN: "The card answered unexpectedly: nothing was changed. Run \"cpsagent doctor\" if it happens again."},
	DoctorHeader:           {FR: "cpsagent doctor — version %s — %s — %s", EN: "cpsagent doctor — version %s — %s — %s"},
	DoctorSummary:          {FR: "Résumé : %d OK, %d avertissement(s), %d échec(s), %d non vérifié(s)", EN: "Summary: %d OK, %d warning(s), %d failure(s), %d not checked"},
	DoctorOK:               {FR: "OK", EN: "OK"},
	DoctorWarn:             {FR: "ATTENTION", EN: "WARNING"},
	DoctorFail:             {FR: "ÉCHEC", EN: "FAILED"},
	DoctorSkip:             {FR: "NON VÉRIFIÉ", EN: "NOT CHECKED"},
	DoctorNotChecked:       {FR: "Non vérifié dans ce contexte.", EN: "Not checked in this context."},
	DoctorPCSCTitle:        {FR: "Service carte à puce (PC/SC)", EN: "Smart-card service (PC/SC)"},
	DoctorPCSCOK:           {FR: "Le service répond.", EN: "The service answers."},
	DoctorPCSCDown:         {FR: "Le service carte à puce ne répond pas : aucune carte ne peut être lue.", EN: "The smart-card service does not answer: no card can be read."},
	DoctorPCSCError:        {FR: "Erreur du service carte à puce : %v", EN: "Smart-card service error: %v"},
	DoctorPCSCHintLinux:    {FR: "Installez et démarrez pcscd : « sudo apt install pcscd » puis « sudo systemctl enable --now pcscd.socket ».", EN: "Install and start pcscd: \"sudo apt install pcscd\" then \"sudo systemctl enable --now pcscd.socket\"."},
	DoctorPCSCHintWindows:  {FR: "Démarrez le service Windows « Carte à puce » (SCardSvr) : services.msc, type de démarrage Automatique.", EN: "Start the Windows \"Smart Card\" service (SCardSvr): services.msc, startup type Automatic."},
	DoctorPCSCHintMac:      {FR: "Rebranchez le lecteur ; si le problème persiste, redémarrez le Mac (le service CryptoTokenKit démarre avec le lecteur).", EN: "Plug the reader in again; if it persists, restart the Mac (the CryptoTokenKit service starts with the reader)."},
	DoctorNeedsPCSC:        {FR: "Impossible sans le service carte à puce.", EN: "Impossible without the smart-card service."},
	DoctorReadersTitle:     {FR: "Lecteurs de carte", EN: "Card readers"},
	DoctorReadersOK:        {FR: "%d lecteur(s) détecté(s).", EN: "%d reader(s) found."},
	DoctorNoReader:         {FR: "Aucun lecteur de carte détecté.", EN: "No card reader found."},
	DoctorNoReaderHint:     {FR: "Branchez le lecteur (essayez un autre port USB) ; sous Windows, vérifiez son pilote dans le Gestionnaire de périphériques.", EN: "Plug in the reader (try another USB port); on Windows, check its driver in Device Manager."},
	DoctorCardsTitle:       {FR: "Cartes", EN: "Cards"},
	DoctorCardsOK:          {FR: "Une carte CPS est prête.", EN: "A CPS card is ready."},
	DoctorNoCard:           {FR: "Aucune carte dans les lecteurs.", EN: "No card in the readers."},
	DoctorNoCardHint:       {FR: "Insérez votre carte CPS, puce vers le haut, jusqu'au bout.", EN: "Insert your CPS card, chip up, all the way in."},
	DoctorUnsupported:      {FR: "La carte insérée n'est pas une carte CPS reconnue.", EN: "The card inserted is not a recognised CPS card."},
	DoctorUnsupportedHint:  {FR: "Vérifiez qu'il s'agit bien de votre carte CPS (et non d'une carte Vitale ou bancaire).", EN: "Check that it is your CPS card (not a Vitale or bank card)."},
	DoctorUnsupportedFact:  {FR: "non reconnue", EN: "not recognised"},
	DoctorSeveralCards:     {FR: "%d cartes CPS sont insérées : les sites devront préciser le lecteur.", EN: "%d CPS cards are inserted: sites will have to name the reader."},
	DoctorSeveralCardsHint: {FR: "Retirez les cartes inutiles (par exemple celle d'un collègue).", EN: "Remove the cards not in use (for example a colleague's)."},
	DoctorExclusiveTitle:   {FR: "Accès partagé à la carte", EN: "Shared access to the card"},
	DoctorExclusiveOK:      {FR: "Aucun autre programme ne bloque la carte.", EN: "No other program locks the card."},
	DoctorExclusiveHeld:    {FR: "Un autre programme utilise la carte en mode exclusif : l'agent ne peut pas y accéder.", EN: "Another program uses the card in exclusive mode: the agent cannot reach it."},
	DoctorExclusiveBusy:    {FR: "La carte est occupée par un autre programme.", EN: "The card is busy in another program."},
	DoctorExclusiveHint:    {FR: "Fermez les autres logiciels qui utilisent la carte (gestionnaire CPS, GALSS, logiciel de facturation, gpg-agent/scdaemon), ou retirez et réinsérez la carte.", EN: "Close the other programs using the card (CPS manager, GALSS, billing software, gpg-agent/scdaemon), or remove and insert the card again."},
	DoctorNoCardToProbe:    {FR: "Pas de carte à vérifier.", EN: "No card to check."},
	DoctorAgentTitle:       {FR: "Port de l'agent", EN: "Agent port"},
	DoctorAgentOK:          {FR: "C'est bien cpsagent qui répond sur ce port.", EN: "cpsagent is the program answering on this port."},
	DoctorAgentNoCA:        {FR: "Un programme qui se présente comme cpsagent répond, mais son certificat n'a pas pu être vérifié (autorité locale introuvable).", EN: "A program presenting itself as cpsagent answers, but its certificate could not be checked (local authority not found)."},
	DoctorNoCAHint:         {FR: "Lancez « cpsagent doctor » avec le même utilisateur que l'agent.", EN: "Run \"cpsagent doctor\" as the same user as the agent."},
	DoctorAgentDown:        {FR: "L'agent ne fonctionne pas : rien n'écoute sur son port.", EN: "The agent is not running: nothing listens on its port."},
	DoctorAgentDownHint:    {FR: "Démarrez cpsagent (menu des applications, ou « cpsagent serve ») et vérifiez son démarrage automatique à l'ouverture de session.", EN: "Start cpsagent (applications menu, or \"cpsagent serve\") and check that it starts automatically at login."},
	DoctorAgentError:       {FR: "Impossible d'interroger l'agent : %v", EN: "Cannot query the agent: %v"},
	DoctorAgentOtherCA:     {FR: "Un autre cpsagent répond (autre utilisateur ou autre installation) : ses certificats ne sont pas ceux de cette session.", EN: "Another cpsagent answers (another user or another installation): its certificates are not this session's."},
	DoctorAgentOtherCAHint: {FR: "Arrêtez l'autre instance, ou sur un poste partagé (RDS/Citrix) donnez à chaque session son propre port.", EN: "Stop the other instance, or on a shared host (RDS/Citrix) give each session its own port."},
	DoctorPortSquatted:     {FR: "Un AUTRE programme occupe le port de l'agent : les sites ne peuvent pas joindre cpsagent.", EN: "ANOTHER program holds the agent's port: sites cannot reach cpsagent."},
	DoctorPortSquattedHint: {FR: "Identifiez ce programme (voir ci-dessus), arrêtez-le ou changez son port, puis redémarrez cpsagent.", EN: "Identify that program (see above), stop it or change its port, then restart cpsagent."},
	DoctorPortOwnerFact:    {FR: "port %d: %s", EN: "port %d: %s"},
	DoctorTLSTitle:         {FR: "Certificat TLS local", EN: "Local TLS certificate"},
	DoctorTLSOK:            {FR: "Certificat valide jusqu'au %s.", EN: "Certificate valid until %s."},
	DoctorTLSTrustHint:     {FR: "Le navigateur doit faire confiance à l'autorité locale %s.", EN: "The browser must trust the local authority %s."},
	DoctorTLSMissing:       {FR: "Certificat absent de %s (l'agent le crée au premier démarrage).", EN: "No certificate in %s (the agent creates it when it first starts)."},
	DoctorTLSMissingHint:   {FR: "Démarrez l'agent une fois, puis relancez « cpsagent install » pour l'ajouter aux navigateurs.", EN: "Start the agent once, then run \"cpsagent install\" again to add it to the browsers."},
	DoctorTLSUnreadable:    {FR: "Certificat illisible : %v", EN: "Certificate unreadable: %v"},
	DoctorTLSExpired:       {FR: "Le certificat a expiré (%s) : les navigateurs refusent la connexion.", EN: "The certificate expired (%s): browsers refuse the connection."},
	DoctorTLSInvalid:       {FR: "Le certificat n'est pas valide pour 127.0.0.1/localhost : %s", EN: "The certificate is not valid for 127.0.0.1/localhost: %s"},
	DoctorTLSSoon:          {FR: "Le certificat expire bientôt (%s).", EN: "The certificate expires soon (%s)."},
	DoctorTLSRenewHint:     {FR: "Redémarrez l'agent : il renouvelle son certificat ; si le navigateur refuse encore, relancez « cpsagent install ».", EN: "Restart the agent: it renews its certificate; if the browser still refuses, run \"cpsagent install\" again."},
	DoctorConfigTitle:      {FR: "Configuration", EN: "Configuration"},
	DoctorConfigOK:         {FR: "%d site(s) autorisé(s) par la configuration.", EN: "%d site(s) allowed by the configuration."},
	DoctorConfigNoOrigin:   {FR: "Aucun site autorisé par la configuration : chaque nouveau site demandera votre accord.", EN: "No site allowed by the configuration: each new site will ask for your consent."},
	DoctorConfigError:      {FR: "Configuration invalide : %v", EN: "Invalid configuration: %v"},
	DoctorConfigHint:       {FR: "Corrigez le fichier de configuration (JSON strict) ou supprimez-le pour revenir aux réglages par défaut.", EN: "Fix the configuration file (strict JSON) or delete it to go back to the defaults."},
	DoctorQuirksTitle:      {FR: "Particularités des cartes", EN: "Card quirks"},
	DoctorQuirksShipped:    {FR: "Réglages de carte intégrés (aucun fichier quirks.json de l'administrateur).", EN: "Built-in card settings (no administrator quirks.json)."},
	DoctorQuirksChanged:    {FR: "quirks.json de l'administrateur en vigueur : %d réglage(s) modifié(s) (%s).", EN: "Administrator quirks.json in force: %d setting(s) changed (%s)."},
	DoctorQuirksBad:        {FR: "quirks.json illisible : l'agent refuse de démarrer avec ce fichier : %v", EN: "quirks.json unreadable: the agent refuses to start with this file: %v"},
	DoctorQuirksBadHint:    {FR: "Corrigez ou supprimez le fichier (docs/field-test.md) ; « cpsagent probe --quirks-out » écrit celui qui convient à la carte.", EN: "Fix or delete the file (docs/field-test.md); \"cpsagent probe --quirks-out\" writes the one that fits the card."},
	DoctorPolicyTitle:      {FR: "Politique de l'administrateur", EN: "Administrator policy"},
	DoctorPolicyNone:       {FR: "Aucune politique machine : l'utilisateur décide des sites autorisés.", EN: "No machine policy: the user decides which sites are allowed."},
	DoctorPolicyOK:         {FR: "Politique en vigueur : %d site(s) autorisé(s), %d interdit(s) ; l'utilisateur peut en ajouter.", EN: "Policy in force: %d site(s) allowed, %d forbidden; the user may add more."},
	DoctorPolicyLocked:     {FR: "Politique en vigueur : %d site(s) autorisé(s), %d interdit(s) ; aucun autre site ne peut être autorisé.", EN: "Policy in force: %d site(s) allowed, %d forbidden; no other site can be allowed."},
	DoctorPolicyBad:        {FR: "Politique illisible, appliquée en mode fermé (aucun site autorisé) : %v", EN: "Policy unreadable, applied closed (no site allowed): %v"},
	DoctorPolicyBadHint:    {FR: "Faites corriger ce fichier par l'administrateur (voir docs/admin.md).", EN: "Have the administrator fix this file (see docs/admin.md)."},
	DoctorPinentryTitle:    {FR: "Fenêtre de saisie du code (pinentry)", EN: "Code dialog (pinentry)"},
	DoctorPinentryOK:       {FR: "Programme trouvé : %s", EN: "Program found: %s"},
	DoctorPinentryMissing:  {FR: "Aucun programme de saisie du code trouvé (cherché : %s).", EN: "No code dialog program found (looked for: %s)."},
	DoctorPinentryHint:     {FR: "Installez pinentry (Debian/Ubuntu : « sudo apt install pinentry-gnome3 » ; Windows : Gpg4win ; macOS : « brew install pinentry-mac »).", EN: "Install pinentry (Debian/Ubuntu: \"sudo apt install pinentry-gnome3\"; Windows: Gpg4win; macOS: \"brew install pinentry-mac\")."},
	DoctorBrowserTitle:     {FR: "Politiques des navigateurs (accès au réseau local)", EN: "Browser policies (Local Network Access)"},
	DoctorBrowserOK:        {FR: "Les %d site(s) autorisé(s) sont pré-autorisés dans %d navigateur(s) : pas d'invite « accès au réseau local ».", EN: "The %d allowed site(s) are pre-allowed in %d browser(s): no Local Network Access prompt."},
	DoctorBrowserMissing:   {FR: "%d site(s) autorisé(s) ne sont pas pré-autorisés dans un navigateur installé : il demandera l'accès au réseau local, et un clic sur « Bloquer » empêche le portail de joindre l'agent.", EN: "%d allowed site(s) are not pre-allowed in an installed browser: it will ask for Local Network Access, and clicking \"Block\" stops the portal from reaching the agent."},
	DoctorBrowserHint:      {FR: "En administrateur : « sudo cpsagent browser-policies --write » (voir docs/admin.md §4).", EN: "As administrator: \"sudo cpsagent browser-policies --write\" (see docs/admin.md §4)."},
	DoctorBrowserNone:      {FR: "Aucun navigateur Chrome, Chromium, Edge ou Firefox trouvé.", EN: "No Chrome, Chromium, Edge or Firefox found."},
	DoctorBrowserNoOrigin:  {FR: "Aucun site autorisé par la politique ou la configuration : rien à pré-autoriser.", EN: "No site allowed by the policy or the configuration: nothing to pre-allow."},
	DoctorBrowserOtherOS:   {FR: "Non vérifié sur ce système : déployez les stratégies par GPO ou registre (Windows) ou par profil de configuration (macOS), voir « cpsagent browser-policies ».", EN: "Not checked on this system: deploy the policies by GPO or registry (Windows) or a configuration profile (macOS), see \"cpsagent browser-policies\"."},
	DoctorBundleWritten:    {FR: "Dossier de support écrit : %s (identifiants et numéros de série masqués).", EN: "Support bundle written: %s (identifiers and serial numbers masked)."},
}
